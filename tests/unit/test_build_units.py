"""Build pieces that are pure: ldflags, version derivation, archive and image bytes."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from goship.build import archive, cgo, gitinfo, oci, tidy
from goship.build.archive import Entry
from goship.build.gitinfo import Stamp
from goship.build.gobuild import Target, ldflags, mod_mode
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


# --- cgo: which C compiler builds each target ----------------------------------------------


ZIG = ("/venv/bin/python", "-m", "ziglang")
ON_PATH = {"cc": "/usr/bin/cc", "gcc": "/usr/bin/gcc",
           "aarch64-linux-gnu-gcc": "/usr/bin/aarch64-linux-gnu-gcc"}


def pick(target: str, *, cgo_on: bool = True, cc: dict[str, str] | None = None,
         zig: tuple[str, ...] | None = None, path: dict[str, str] | None = None
         ) -> cgo.Toolchain | cgo.Refusal:
    found = ON_PATH if path is None else path
    return cgo.choose(target, cgo=cgo_on, host="linux/amd64", cc=cc or {},
                      which=found.get, zig=zig)


@pytest.mark.parametrize(("target", "cgo_on", "cc", "zig", "path", "expected"), [
    # cgo off: no compiler, whatever is installed
    ("linux/amd64", False, None, None, {}, ("off", None)),
    ("linux/arm64", False, None, None, {}, ("off", None)),
    # native: the machine's cc; a named one wins; none installed is refused
    ("linux/amd64", True, None, None, None, ("cgo", None)),
    ("linux/amd64", True, None, None, {"gcc": "/usr/bin/gcc"}, ("cgo", ("gcc",))),
    ("linux/amd64", True, {"linux/amd64": "gcc -m64"}, None, None, ("cgo", ("gcc", "-m64"))),
    ("linux/amd64", True, None, None, {}, ("refused", "apt-get install gcc libc6-dev")),
    ("linux/amd64", True, {"linux/amd64": "zig"}, ZIG, None,
     ("cgo", (*ZIG, "cc", "-target", "x86_64-linux-gnu"))),
    # cross: the named cross-compiler, else zig when installed, else refused with the fix
    ("linux/arm64", True, {"linux/arm64": "aarch64-linux-gnu-gcc"}, ZIG, None,
     ("cgo", ("aarch64-linux-gnu-gcc",))),
    ("linux/arm64", True, {"linux/arm64": "aarch64-linux-gnu-gcc"}, None, {},
     ("refused", "apt-get install gcc-aarch64-linux-gnu")),
    ("linux/arm64", True, None, ZIG, None,
     ("cgo", (*ZIG, "cc", "-target", "aarch64-linux-gnu"))),
    ("linux/arm64", True, {"linux/arm64": "zig"}, None, None, ("refused", "goship[zig]")),
    ("linux/arm64", True, None, None, None,
     ("refused", 'build.cc."linux/arm64" = "aarch64-linux-gnu-gcc"')),
    ("windows/amd64", True, None, ZIG, None,
     ("cgo", (*ZIG, "cc", "-target", "x86_64-windows-gnu"))),
    ("darwin/arm64", True, None, ZIG, None, ("refused", "on a darwin/arm64 machine")),
])
def test_cgo_decision_table(target: str, cgo_on: bool, cc: dict[str, str] | None,
                            zig: tuple[str, ...] | None, path: dict[str, str] | None,
                            expected: tuple[str, object]) -> None:
    got = pick(target, cgo_on=cgo_on, cc=cc, zig=zig, path=path)
    kind, detail = expected
    if kind == "refused":
        assert isinstance(got, cgo.Refusal)
        assert str(detail) in got.hint
    else:
        assert isinstance(got, cgo.Toolchain)
        assert got.cgo is (kind == "cgo")
        assert got.cc == detail


STUB = "//go:build !cgo\n\npackage sqlite3\n// requires cgo to work. This is a stub\n"
PURE = "//go:build !cgo\n\npackage fast\n\nfunc Sum(b []byte) uint32 { return 0 }\n"


def test_cgo_need_refuses_stubs_and_missing_fallbacks_and_warns_on_pure_fallbacks() -> None:
    verdict = cgo.need([
        cgo.CgoPackage("github.com/mattn/go-sqlite3", ("sqlite3.go",), (STUB,)),
        cgo.CgoPackage("example.com/needs-c", ("c.go",), ()),
        cgo.CgoPackage("example.com/fast", ("fast_cgo.go",), (PURE,)),
        cgo.CgoPackage("example.com/none", (), ()),
    ])
    assert verdict.refuse == ("example.com/needs-c", "github.com/mattn/go-sqlite3")
    assert verdict.unsure == ("example.com/fast",)
    assert cgo.is_not_cgo_file(STUB)
    assert not cgo.is_not_cgo_file("//go:build cgo\n\npackage x\n")


def test_cgo_packages_and_embeds_from_go_list(tmp_path: Path) -> None:
    from goship.build import golist

    (tmp_path / "static_mock.go").write_text(STUB)
    (tmp_path / "other_linux.go").write_text("//go:build linux\n\npackage sqlite3\n")
    stream = json.dumps({"ImportPath": "net", "Standard": True, "CgoFiles": ["cgo_unix.go"]})
    stream += json.dumps({"ImportPath": "github.com/mattn/go-sqlite3", "Dir": str(tmp_path),
                          "CgoFiles": ["sqlite3.go"],
                          "IgnoredGoFiles": ["static_mock.go", "other_linux.go"]})
    stream += "\n" + json.dumps({
        "ImportPath": "example.com/app", "Dir": "/src/app", "Module": {"Main": True},
        "EmbedPatterns": ["build/*"], "EmbedFiles": ["build/a.html"],
        "Error": {"Pos": "main.go:5:12", "Err": "pattern build/*: no matching files found"}})
    packages = golist.parse_stream(stream)
    assert [p.import_path for p in golist.cgo_packages(packages)] == [
        "github.com/mattn/go-sqlite3"]
    assert golist.cgo_packages(packages)[0].fallback == (STUB,)
    assert golist.embed_problems(packages) == [
        golist.EmbedProblem("build/*", "/src/app", "main.go:5:12")]
    assert golist.embedded_files(packages) == [Path("/src/app/build/a.html")]


@pytest.mark.parametrize(("goflags", "vendor", "expected"), [
    ("", False, "readonly"),
    ("", True, "vendor"),
    ("-mod=vendor", False, "vendor"),
    ("-buildvcs=false -mod=mod", True, "mod"),
    ("-buildvcs=false", True, "vendor"),
])
def test_mod_mode(goflags: str, vendor: bool, expected: str) -> None:
    assert mod_mode(goflags, vendor)[0] == expected


# --- go mod tidy -diff, classified --------------------------------------------------------

TIDY_DIFF = """diff current/go.mod tidy/go.mod
--- current/go.mod
+++ tidy/go.mod
@@ -2,8 +2,9 @@
 go 1.25.0
+require github.com/gin-gonic/gin v1.12.0
 require (
-\tgithub.com/google/uuid v1.6.0
-\tgithub.com/bytedance/sonic v1.14.0 // indirect
+\tgithub.com/bytedance/sonic v1.15.0 // indirect
-\tgithub.com/pelletier/go-toml/v2 v2.2.4
+\tgithub.com/pelletier/go-toml/v2 v2.2.4 // indirect
 )

diff current/go.sum tidy/go.sum
--- current/go.sum
+++ tidy/go.sum
@@ -87,4 +87,3 @@
 gopkg.in/yaml.v3 v3.0.1 h1:fxVm=
+github.com/gin-gonic/gin v1.12.0 h1:abc=
-github.com/foo/bar v1.0.0 h1:AAAA=
-github.com/foo/bar v1.0.0/go.mod h1:BBBB=
"""


def test_tidy_diff_classification() -> None:
    r = tidy.classify(TIDY_DIFF)
    assert r.missing == ["require github.com/gin-gonic/gin v1.12.0"]
    assert r.changed == ["github.com/bytedance/sonic v1.14.0 -> v1.15.0"]
    assert r.unused == ["github.com/google/uuid v1.6.0"]
    assert r.cosmetic == ["github.com/pelletier/go-toml/v2 v2.2.4 // indirect"]
    assert r.sum_missing == ["github.com/gin-gonic/gin v1.12.0 h1:abc="]
    assert r.sum_stale == ["github.com/foo/bar v1.0.0 h1:AAAA=",
                           "github.com/foo/bar v1.0.0/go.mod h1:BBBB="]
    assert r.errors
    assert r.summary() == ("1 missing requirement, 1 requirement tidy would change, 1 missing "
                           "go.sum line, 1 unused requirement, 2 stale go.sum lines, "
                           "1 cosmetic go.mod change")


def test_stale_go_sum_only_is_a_warning_with_a_short_summary() -> None:
    diff = "diff current/go.sum tidy/go.sum\n--- current/go.sum\n+++ tidy/go.sum\n@@ -1 +1 @@\n"
    diff += "".join(f"-example.com/m{i} v1.0.0 h1:x=\n" for i in range(1265))
    r = tidy.classify(diff)
    assert not r.errors
    assert not r.clean
    assert r.summary() == "1265 stale go.sum lines"
    assert r.details()[-1] == "    ... and 1260 more"
    assert len(r.details()) == 6
    assert tidy.classify("").clean


# --- the release id of a build with produced (untracked) files -----------------------------

def test_release_id_with_produced_files() -> None:
    one = gitinfo.generated_digest({"build/index.html": b"<h1>a</h1>", "build/app.js": b"x"})
    same = gitinfo.generated_digest({"build/app.js": b"x", "build/index.html": b"<h1>a</h1>"})
    other = gitinfo.generated_digest({"build/index.html": b"<h1>b</h1>", "build/app.js": b"x"})
    assert one == same != other
    assert gitinfo.generated_digest({}) == ""
    stamp = STAMP.with_generated(one)
    assert stamp.version == f"v1.2.3+gen.{one[:8]}"
    assert stamp.safe_version == f"v1.2.3-gen.{one[:8]}"
    assert STAMP.with_generated("") == STAMP
    assert STAMP.with_generated(other).version != stamp.version
    rid = archive.release_id(stamp, ENTRIES)
    assert rid == archive.release_id(STAMP.with_generated(same), ENTRIES)
    assert rid != archive.release_id(STAMP.with_generated(other), ENTRIES)


@pytest.mark.parametrize(("key", "value"), [
    ("before", ["npm ci\nrm -rf /"]),
    ("before", [""]),
    ("before", ["a\0b"]),
    ("cc", {"linux/arm64": "gcc; rm -rf /"}),
    ("cc", {"linux/arm64": "$(evil)"}),
    ("cc", {"arm64": "gcc"}),
])
def test_build_before_and_cc_reject_hostile_values(key: str, value: object) -> None:
    from pydantic import ValidationError

    from goship.config.model import Build

    with pytest.raises(ValidationError):
        Build.model_validate({key: value})
    ok = Build.model_validate({"before": ["npm --prefix web ci && npm --prefix web run build"],
                               "cc": {"linux/arm64": "zig",
                                      "linux/arm": "arm-linux-gnueabihf-gcc -march=armv7-a"}})
    assert ok.cc["linux/arm64"] == "zig"


def test_doctor_names_the_c_compiler_of_each_cgo_target(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from goship import doctor
    from goship.config import load

    (tmp_path / "goship.toml").write_text(
        '[app]\nname = "shop"\n\n[build]\ncgo = true\n'
        'targets = ["linux/amd64", "linux/arm64"]\n')
    monkeypatch.setattr("goship.build.gobuild.host_target", lambda: "linux/amd64")
    monkeypatch.setattr("goship.build.gobuild.find_zig", lambda: None)
    monkeypatch.setattr("shutil.which", {"cc": "/usr/bin/cc"}.get)
    monkeypatch.setattr(doctor, "_tool_version", lambda argv: "cc 12.2.0")
    lines = [c.line() for c in doctor.cgo_checks(load(tmp_path / "goship.toml"))]
    assert lines[0] == "ok   local: cgo linux/amd64: native, cc (cc 12.2.0)"
    assert lines[1].startswith("FAIL local: cgo linux/arm64: build.cgo = true and linux/arm64 "
                               "is a cross-compile from linux/amd64: no C compiler for it -> "
                               "apt-get install gcc-aarch64-linux-gnu")
