"""A release on a host is checked against its SHA256SUMS before it is used (upload) and
when a deploy finds it already there: the scripts run for real with `sh`, with openssl's
sha256 and, on a host without openssl, sha256sum's. A changed, missing or extra-spaced
file name is judged as sha256sum -c would."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from goship.deploy import scripts

ARCHIVE_SHA = "ab" * 32


def release(root: Path, files: dict[str, bytes]) -> Path:
    d = root / "releases" / "v1"
    for name, data in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(data)
    (d / "SHA256SUMS").write_text("".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n"
                                          for name, data in files.items()))
    (d / ".archive-sha256").write_text(ARCHIVE_SHA + "\n")
    return d


def has_release(d: Path, sha: str = ARCHIVE_SHA, path: str | None = None) -> str:
    env = {**os.environ, "PATH": path} if path is not None else None
    r = subprocess.run(["/bin/sh", "-c", scripts.HAS_RELEASE, "goship-has-release", str(d),
                        sha], capture_output=True, text=True, check=False, env=env,
                       timeout=60)
    return r.stdout.strip()


FILES = {"app": os.urandom(200_000), "static/site.css": b"body {}\n",
         "templates/my page.tmpl": b"<h1>hi</h1>\n"}


@pytest.fixture(params=["openssl", "sha256sum only"])
def path(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    if request.param == "openssl":
        assert shutil.which("openssl"), "openssl is a prerequisite of the tests"
        return None
    # A host without openssl: a PATH holding sha256sum alone.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sha256sum").symlink_to(shutil.which("sha256sum") or "/usr/bin/sha256sum")
    return str(bin_dir)


def test_an_intact_release_is_there(tmp_path: Path, path: str | None) -> None:
    assert has_release(release(tmp_path, FILES), path=path) == "yes"


def test_a_changed_file_means_it_is_not(tmp_path: Path, path: str | None) -> None:
    d = release(tmp_path, FILES)
    (d / "static/site.css").write_bytes(b"body { color: red }\n")
    assert has_release(d, path=path) == "no"


def test_a_missing_file_means_it_is_not(tmp_path: Path, path: str | None) -> None:
    d = release(tmp_path, FILES)
    (d / "app").unlink()
    assert has_release(d, path=path) == "no"


def test_another_archive_means_it_is_not(tmp_path: Path, path: str | None) -> None:
    assert has_release(release(tmp_path, FILES), sha="cd" * 32, path=path) == "no"


def test_an_escaped_name_is_checked_by_sha256sum(tmp_path: Path) -> None:
    d = release(tmp_path, {"a": b"x\n"})
    # sha256sum escapes a name with a backslash or newline: its own -c reads it back
    (d / "b\\c").write_bytes(b"y\n")
    sums = subprocess.run(["sha256sum", "a", "b\\c"], cwd=d, capture_output=True,
                          text=True, check=True).stdout
    (d / "SHA256SUMS").write_text(sums)
    assert sums.splitlines()[1].startswith("\\")
    assert has_release(d) == "yes"
    (d / "b\\c").write_bytes(b"z\n")
    assert has_release(d) == "no"


def unpack(tmp_path: Path, archive: Path, sha: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "releases").mkdir(exist_ok=True)
    return subprocess.run(["sh", "-c", scripts.UNPACK, "goship-unpack", str(archive), sha,
                           str(tmp_path / "releases"), "v2"],
                          capture_output=True, text=True, check=False, timeout=60)


def test_unpack_checks_the_archive_then_every_file(tmp_path: Path) -> None:
    src = release(tmp_path / "src", FILES)
    (src / ".archive-sha256").unlink()
    archive = tmp_path / "v2.tar.gz"
    subprocess.run(["tar", "-czf", str(archive), "-C", str(src), "."], check=True)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    bad = unpack(tmp_path, archive, "00" * 32)
    assert bad.returncode == 4
    assert "archive sha256 mismatch" in bad.stderr
    assert not (tmp_path / "releases" / "v2").exists()
    ok = unpack(tmp_path, archive, sha)
    assert ok.returncode == 0, ok.stderr
    d = tmp_path / "releases" / "v2"
    assert (d / "app").read_bytes() == FILES["app"]
    assert (d / ".archive-sha256").read_text() == sha + "\n"
    assert not archive.exists()
    # a file unlike its SHA256SUMS line: refused, nothing left behind
    (src / "static/site.css").write_bytes(b"changed\n")
    subprocess.run(["tar", "-czf", str(archive), "-C", str(src), "."], check=True)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    shutil.rmtree(d)
    r = unpack(tmp_path, archive, sha)
    assert r.returncode == 4
    assert "does not match its sha256" in r.stderr
    assert sorted(p.name for p in (tmp_path / "releases").iterdir()) == []
