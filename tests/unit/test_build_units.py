"""Build pieces that are pure: ldflags, version derivation, archive and image bytes."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from goship.build import archive, gitinfo, oci
from goship.build.archive import Entry
from goship.build.gitinfo import Stamp
from goship.build.gobuild import Target, ldflags
from goship.errors import UsageError

STAMP = Stamp("v1.2.3", "0123456789abcdef0123456789abcdef01234567", 1700000000, False)


def test_ldflags_are_sorted_and_filled() -> None:
    flags = ldflags({"main.version": "{version}", "example.com/x/internal/buildinfo.Commit":
                     "{commit}", "main.buildTime": "{build_time}", "main.channel": "stable"},
                    STAMP)
    assert flags == (
        "-s -w -X example.com/x/internal/buildinfo.Commit="
        "0123456789abcdef0123456789abcdef01234567 -X main.buildTime=2023-11-14T22:13:20Z "
        "-X main.channel=stable -X main.version=v1.2.3")


def test_target_names() -> None:
    t = Target.parse("windows/amd64")
    assert (t.slug, t.binary("shop"), str(t)) == ("windows_amd64", "shop.exe", "windows/amd64")
    assert Target.parse("linux/arm64").binary("shop") == "shop"


def git(repo: Path, *args: str, date: str = "2024-05-01T12:00:00Z") -> str:
    env = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date, "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    (tmp_path / "main.go").write_text("package main\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "one")
    git(tmp_path, "tag", "v0.4.0")
    return tmp_path


def test_version_from_git_describe_and_commit_time(repo: Path) -> None:
    s = gitinfo.derive(repo, "git", allow_dirty=False)
    assert s.version == "v0.4.0"
    assert s.commit == git(repo, "rev-parse", "HEAD")
    assert s.build_time == "2024-05-01T12:00:00Z"
    (repo / "x.go").write_text("package main\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "two", date="2024-05-02T00:00:00Z")
    s = gitinfo.derive(repo, "git", allow_dirty=False)
    assert s.version.startswith("v0.4.0-1-g")
    assert s.build_time == "2024-05-02T00:00:00Z"


def test_dirty_tree_refused_unless_allowed(repo: Path) -> None:
    (repo / "main.go").write_text("package main // edited\n")
    with pytest.raises(UsageError) as info:
        gitinfo.derive(repo, "git", allow_dirty=False)
    assert "uncommitted changes (main.go)" in info.value.line()
    assert "--allow-dirty" in info.value.line()
    assert gitinfo.derive(repo, "git", allow_dirty=True).version == "v0.4.0-dirty"
    assert gitinfo.derive(repo, "2.0.0", allow_dirty=True).version == "2.0.0-dirty"


def test_untracked_files_do_not_make_a_tree_dirty(repo: Path) -> None:
    (repo / "notes.txt").write_text("scratch\n")
    assert not gitinfo.derive(repo, "git", allow_dirty=False).dirty


def test_source_date_epoch_wins(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    assert gitinfo.derive(repo, "git", allow_dirty=False).build_time == "1970-01-02T00:00:00Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(UsageError):
        gitinfo.derive(repo, "git", allow_dirty=False)


def test_no_git(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        gitinfo.derive(tmp_path, "git", allow_dirty=False)
    assert 'set app.version = "1.2.3"' in info.value.line()
    s = gitinfo.derive(tmp_path, "1.0.0", allow_dirty=False)
    assert (s.version, s.commit, s.epoch) == ("1.0.0", "unknown", 0)


def test_safe_version() -> None:
    assert Stamp("release/2024:a+b", "c", 0, False).safe_version == "release-2024-a-b"


ENTRIES = [Entry("shop", b"\x7fELF...", 0o755), Entry("templates/a.tmpl", b"<p>", 0o644),
           Entry("static/css/x.css", b"body{}", 0o644)]


def test_tar_is_deterministic_and_normalised() -> None:
    meta = {"files": {e.path: archive.sha256(e.data) for e in ENTRIES}}
    entries = archive.with_metadata(ENTRIES, meta)
    one = archive.tar_gz(entries, 1700000000)
    two = archive.tar_gz(list(reversed(entries)), 1700000000)
    assert one == two
    with tarfile.open(fileobj=io.BytesIO(one)) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names)
        assert {(m.uid, m.gid, m.mtime) for m in members} == {(0, 0, 1700000000)}
        modes = {m.name: m.mode for m in members}
        assert modes["shop"] == 0o755
        assert modes["templates/a.tmpl"] == 0o644
        assert modes["static/css"] == 0o755
        sums = tar.extractfile("SHA256SUMS")
        assert sums is not None
        lines = sums.read().decode().splitlines()
    assert f"{archive.sha256(b'<p>')}  templates/a.tmpl" in lines
    assert any(line.endswith("  manifest.json") for line in lines)
    assert one[4:8] == b"\0\0\0\0"  # gzip header mtime


def test_zip_clamps_dates_to_1980_and_keeps_modes() -> None:
    data = archive.zip_bytes(ENTRIES, 0)
    assert data == archive.zip_bytes(ENTRIES, 0)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo("shop")
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert (info.external_attr >> 16) & 0o777 == 0o755


def test_release_id_follows_content() -> None:
    a = archive.release_id(STAMP, ENTRIES)
    assert a.startswith("v1.2.3-")
    assert archive.release_id(STAMP, list(reversed(ENTRIES))) == a
    changed = [*ENTRIES[:2], Entry("static/css/x.css", b"body{color:red}", 0o644)]
    assert archive.release_id(STAMP, changed) != a


def test_image_is_deterministic_and_well_formed(tmp_path: Path) -> None:
    inp = oci.ImageInput(app="shop", arch="amd64", binary=Entry("shop", b"bin", 0o755),
                         assets=[Entry("templates/a.tmpl", b"<p>", 0o644)], port=8080,
                         port_env="PORT", env={"GIN_MODE": "release"})
    arm = oci.ImageInput(**{**inp.__dict__, "arch": "arm64"})
    one = oci.build_image([inp, arm], STAMP, tmp_path / "one.tar")
    two = oci.build_image([inp, arm], STAMP, tmp_path / "two.tar")
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    assert one.digests == two.digests
    assert one.tags == ["shop:v1.2.3-amd64", "shop:v1.2.3-arm64"]
    with tarfile.open(tmp_path / "one.tar") as tar:
        def read(name: str) -> bytes:
            f = tar.extractfile(name)
            assert f is not None
            return f.read()

        assert json.loads(read("oci-layout")) == {"imageLayoutVersion": "1.0.0"}
        index = json.loads(read("index.json"))
        assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64",
                                                                               "arm64"]
        docker = json.loads(read("manifest.json"))
        config = json.loads(read(docker[0]["Config"]))
        c = config["config"]
        assert c["User"] == "65532:65532"
        assert c["Entrypoint"] == ["/app/shop"]
        assert c["WorkingDir"] == "/app"
        assert "GIN_MODE=release" in c["Env"]
        assert c["ExposedPorts"] == {"8080/tcp": {}}
        assert c["Labels"]["org.opencontainers.image.version"] == "v1.2.3"
        layer_blob = read(docker[0]["Layers"][0])
    import gzip
    import hashlib

    raw = gzip.decompress(layer_blob)
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(raw).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(raw)) as layer:
        members = {m.name: m for m in layer.getmembers()}
    assert members["tmp"].mode == 0o1777
    assert members["app/shop"].mode == 0o755
    assert "app/templates/a.tmpl" in members
    assert "etc/passwd" in members
    assert "etc/group" in members
    if Path("/etc/ssl/certs/ca-certificates.crt").exists():
        assert "etc/ssl/certs/ca-certificates.crt" in members
    if Path("/usr/share/zoneinfo/Europe/Paris").exists():
        assert "usr/share/zoneinfo/Europe/Paris" in members
