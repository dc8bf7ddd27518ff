"""goship build and package on real Go projects: stamped, reproducible, verified archives,
images that a real Docker engine loads and runs as non-root."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from goship.build.archive import verify_tree
from tests.conftest import EXAMPLE, CliResult, need
from tests.e2e.helpers import example_repo, free_port
from tests.e2e.helpers import git as _git

pytestmark = pytest.mark.slow
Run = Callable[..., CliResult]
DATE = "2025-03-04T05:06:07Z"


def git(repo: Path, *args: str) -> str:
    return _git(repo, *args, date=DATE)


def copy_example(dest: Path) -> Path:
    example_repo(dest, tag=None, date=DATE)
    git(dest, "tag", "v1.2.3")
    return dest


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need("go")
    return copy_example(tmp_path_factory.mktemp("a") / "hello-gin")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_http(url: str, deadline: float = 10) -> bytes:
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return bytes(r.read())
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def test_build_stamps_version_commit_and_commit_time(run_cli: Run, release: Path) -> None:
    r = run_cli("build", "--json", cwd=release)
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["version"] == "v1.2.3"
    assert data["build_time"] == DATE
    binary = Path(data["artifacts"][0]["path"])
    assert binary == release / "dist" / "v1.2.3" / "linux_amd64" / "hello-gin"
    port = free_port()
    proc = subprocess.Popen([str(binary)], cwd=release, env={"PORT": str(port)},
                            stdout=subprocess.DEVNULL)
    try:
        answer = json.loads(wait_http(f"http://127.0.0.1:{port}/version"))
    finally:
        proc.terminate()
        proc.wait()
    assert answer == {"version": "v1.2.3", "commit": git(release, "rev-parse", "HEAD"),
                      "build_time": DATE}


def test_same_commit_in_two_directories_is_byte_identical(run_cli: Run, release: Path,
                                                          tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "checkout"
    subprocess.run(["git", "clone", "-q", str(release), str(other)], check=True)
    results = []
    for d in (release, other):
        r = run_cli("package", "--json", cwd=d)
        assert r.code == 0, r.err
        results.append(json.loads(r.out)["packages"][0])
    a, b = results
    assert a["release_id"] == b["release_id"]
    assert a["sha256"] == b["sha256"]  # the archive, so the binary inside too
    assert sha(release / "dist/v1.2.3/linux_amd64/hello-gin") == \
        sha(other / "dist/v1.2.3/linux_amd64/hello-gin")


def test_archives_verify_and_windows_gets_a_zip(run_cli: Run, release: Path,
                                                tmp_path: Path) -> None:
    r = run_cli("package", "--target", "linux/amd64", "--target", "windows/amd64", "--json",
                cwd=release)
    assert r.code == 0, r.err
    pkgs = {p["target"]: p for p in json.loads(r.out)["packages"]}
    tgz = Path(pkgs["linux/amd64"]["path"])
    assert tgz.name == "hello-gin_v1.2.3_linux_amd64.tar.gz"
    out = tmp_path / "unpacked"
    out.mkdir()
    with tarfile.open(tgz) as tar:
        tar.extractall(out, filter="data")
    assert verify_tree(out) == []
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    meta = json.loads((out / "manifest.json").read_text())
    assert meta["app"] == "hello-gin"
    assert meta["version"] == "v1.2.3"
    assert meta["target"] == "linux/amd64"
    assert meta["go_version"].startswith("go1.")
    assert meta["release_id"] == pkgs["linux/amd64"]["release_id"]
    assert "-X main.version=v1.2.3" in meta["build"]["ldflags"]
    assert {"hello-gin", "templates/index.tmpl", "static/style.css",
            "service/systemd/hello-gin-blue@.service",
            "service/supervisord/programs/hello-gin-green.conf"} <= set(meta["files"])
    assert {f for f in meta["files"] if not f.startswith("service/")} == {
        "hello-gin", "templates/index.tmpl", "static/style.css"}
    assert os.access(out / "hello-gin", os.X_OK)
    # a tampered file is caught
    (out / "templates" / "index.tmpl").write_text("<p>evil</p>")
    assert verify_tree(out) == ["templates/index.tmpl: sha256 mismatch"]

    zpath = Path(pkgs["windows/amd64"]["path"])
    assert zpath.suffix == ".zip"
    with zipfile.ZipFile(zpath) as zf:
        names = zf.namelist()
        assert "hello-gin.exe" in names
        assert zf.read("hello-gin.exe")[:2] == b"MZ"
        wmeta = json.loads(zf.read("manifest.json"))
        assert hashlib.sha256(zf.read("hello-gin.exe")).hexdigest() == \
            wmeta["files"]["hello-gin.exe"]


def test_dirty_tree_is_refused(run_cli: Run, tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "dirty")
    (repo / "main.go").write_text((repo / "main.go").read_text() + "\n// wip\n")
    r = run_cli("build", cwd=repo)
    assert r.code == 2
    assert "uncommitted changes (main.go)" in r.err
    assert not (repo / "dist").exists()
    r = run_cli("build", "--allow-dirty", "--json", "--skip-checks", cwd=repo)
    assert r.code == 0, r.err
    assert json.loads(r.out)["version"] == "v1.2.3-dirty"


def test_compile_error_leaves_nothing_and_shows_the_compiler(run_cli: Run,
                                                             tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "broken")
    (repo / "broken.go").write_text("package main\n\nfunc broken() int { return \"x\" }\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "broken")
    r = run_cli("build", "--skip-checks", cwd=repo)
    assert r.code == 1
    assert "go build failed for linux/amd64" in r.err
    assert "broken.go:3" in r.err  # the compiler's own words reach the user
    dist = repo / "dist"
    assert not dist.exists() or list(dist.rglob("*")) == []  # no artifact, no temp dir


def test_stale_go_sum_warns_and_missing_requirement_fails_with_a_summary(
        run_cli: Run, tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "untidy")
    gosum, gomod = repo / "go.sum", repo / "go.mod"
    # 300 stale go.sum lines: a warning with a count and the first lines, not the diff.
    gosum.write_text(gosum.read_text() + "".join(
        f"example.com/old{i} v1.0.{i} h1:{'A' * 43}=\n" for i in range(300)))
    git(repo, "commit", "-qam", "stale sums")
    r = run_cli("build", cwd=repo)
    assert r.code == 0, r.err
    assert "warning: go.mod/go.sum: 300 stale go.sum lines" in r.err
    assert "... and 295 more" in r.err
    assert len(r.err.splitlines()) < 20
    # A requirement go.mod lacks: an error, the requirement named.
    gomod.write_text(gomod.read_text().replace("require github.com/gin-gonic/gin v", "// v"))
    git(repo, "commit", "-qam", "missing require")
    r = run_cli("build", cwd=repo)
    assert r.code == 2, r.err
    assert "go.mod/go.sum are not tidy: 1 missing requirement, 300 stale go.sum lines" in r.err
    assert "+ require github.com/gin-gonic/gin v" in r.err
    assert "run `go mod tidy` and commit, or pass --fix" in r.err
    # --fix repairs the files, so the tree is no longer the commit: refused as any change.
    r = run_cli("build", "--fix", cwd=repo)
    assert r.code == 2, r.err
    assert "`go mod tidy` (--fix) changed files git tracks: the working tree has uncommitted " \
           "changes (go.mod, go.sum)" in r.err
    r = run_cli("build", "--fix", "--allow-dirty", "--json", cwd=repo)
    assert r.code == 0, r.err
    assert json.loads(r.out)["version"].endswith("-dirty")
    assert "require github.com/gin-gonic/gin v" in gomod.read_text()
    assert "example.com/old1 " not in gosum.read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["--target", "linux/amd65"], "--target linux/amd65: 'linux/amd65' is not a target this Go "
                                  "toolchain knows"),
])
def test_bad_target(run_cli: Run, release: Path, args: list[str], message: str) -> None:
    r = run_cli("build", *args, cwd=release)
    assert r.code == 2
    assert message in r.err


def test_config_problems_are_one_line(run_cli: Run, tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "cfg")
    toml = repo / "goship.toml"
    base = toml.read_text()
    toml.write_text(base.replace('main = "."', 'main = "cmd/nope"'))
    r = run_cli("build", cwd=repo)
    assert r.code == 2
    assert "app.main: no Go package at" in r.err
    toml.write_text(base.replace('assets = ["templates", "static"]',
                                 'assets = ["templates", "missing"]'))
    r = run_cli("build", cwd=repo)
    assert r.code == 2
    assert "build.assets[1]: directory not found" in r.err
    toml.write_text(base.replace('targets = ["linux/amd64"]', 'targets = ["plan10/amd64"]'))
    r = run_cli("build", cwd=repo)
    assert r.code == 2
    assert "build.targets[0]: 'plan10/amd64' is not a target" in r.err


def test_no_go_toolchain(run_cli: Run, release: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    r = run_cli("build", cwd=release)
    assert r.code == 2
    assert r.err == ("goship: the Go toolchain is not installed; install Go (https://go.dev/dl) "
                     "and put it on PATH\n")


def test_upx_absent_is_one_line_and_the_build_goes_on(run_cli: Run, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    repo = copy_example(tmp_path / "upx")
    toml = repo / "goship.toml"
    toml.write_text(toml.read_text().replace("[build]\n", "[build]\nupx = true\n"))
    git(repo, "commit", "-qam", "upx")
    monkeypatch.setattr("goship.build.upx.available", lambda: False)
    r = run_cli("build", "--skip-checks", cwd=repo)
    assert r.code == 0, r.err
    assert "warning: upx is not installed: binaries stay unpacked" in r.err


def test_upx_packs_and_measures(run_cli: Run, tmp_path: Path) -> None:
    if shutil.which("upx") is None:
        pytest.skip("upx is not installed here (Debian bookworm's mirror here has no upx)")
    repo = copy_example(tmp_path / "upx2")
    toml = repo / "goship.toml"
    toml.write_text(toml.read_text().replace("[build]\n", "[build]\nupx = true\n"))
    git(repo, "commit", "-qam", "upx")
    r = run_cli("build", "--skip-checks", cwd=repo)
    assert r.code == 0, r.err
    assert "upx: size" in r.err
    assert "upx -t ok" in r.err


LAYERED = {
    "cmd/api/main.go": """package main

import (
\t"context"
\t"os/signal"
\t"syscall"

\t"example.com/layered/internal/buildinfo"
\t"example.com/layered/internal/server"
)

func main() {
\tctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
\tdefer stop()
\tserver.Run(ctx, buildinfo.Version)
}
""",
    "internal/buildinfo/buildinfo.go": "package buildinfo\n\nvar Version = \"dev\"\n",
    "internal/server/server.go": """package server

import (
\t"context"
\t"net/http"
\t"os"

\t"github.com/gin-gonic/gin"
)

func Run(ctx context.Context, version string) {
\tr := gin.New()
\tr.LoadHTMLGlob("web/templates/*")
\tr.GET("/healthz", func(c *gin.Context) { c.String(200, version) })
\tr.GET("/", func(c *gin.Context) { c.HTML(200, "page.tmpl", gin.H{"v": version}) })
\tport := os.Getenv("APP_PORT")
\tsrv := &http.Server{Addr: ":" + port, Handler: r}
\tgo srv.ListenAndServe()
\t<-ctx.Done()
\tsrv.Shutdown(context.Background())
}
""",
    "web/templates/page.tmpl": "<b>layered {{ .v }}</b>\n",
}


@pytest.fixture
def layered(tmp_path: Path, run_cli: Run) -> Path:
    """A service laid out differently: main in cmd/api, code in internal/, assets in web/,
    the version in a buildinfo package, APP_PORT."""
    root = tmp_path / "layered"
    for name, text in LAYERED.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "go.mod").write_text((EXAMPLE / "go.mod").read_text().replace(
        "module example.com/hello-gin", "module example.com/layered"))
    shutil.copy(EXAMPLE / "go.sum", root / "go.sum")
    r = run_cli("init", str(root))
    assert r.code == 0, r.err
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "layered")
    git(root, "tag", "v0.9.0")
    return root


def test_layered_service_builds_for_linux_and_windows(run_cli: Run, layered: Path) -> None:
    r = run_cli("package", "--skip-checks", "--target", "linux/amd64", "--target",
                "windows/amd64", "--json", cwd=layered)
    assert r.code == 0, r.err
    pkgs = {p["target"]: p for p in json.loads(r.out)["packages"]}
    assert set(pkgs) == {"linux/amd64", "windows/amd64"}
    binary = layered / "dist/v0.9.0/linux_amd64/layered"
    port = free_port()
    proc = subprocess.Popen([str(binary)], cwd=layered, env={"APP_PORT": str(port)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_http(f"http://127.0.0.1:{port}/healthz") == b"v0.9.0"
        assert b"<b>layered v0.9.0</b>" in wait_http(f"http://127.0.0.1:{port}/")
    finally:
        proc.terminate()
        proc.wait()
    with zipfile.ZipFile(pkgs["windows/amd64"]["path"]) as zf:
        assert {"layered.exe", "web/templates/page.tmpl", "install-service.ps1",
                "uninstall-service.ps1", "layered.xml", "windows-service.md"} <= \
            set(zf.namelist())
        script = zf.read("install-service.ps1").decode()
        assert "nssm install $Service (Join-Path $App 'layered.exe')" in script


def test_image_loads_into_docker_and_serves_as_non_root(run_cli: Run, release: Path,
                                                       docker: list[str]) -> None:
    r = run_cli("package", "--image", "--json", "--skip-checks", cwd=release)
    assert r.code == 0, r.err
    image = json.loads(r.out)["image"]
    # Rebuilt: the same digest.
    again = json.loads(run_cli("package", "--image", "--json", "--skip-checks",
                               cwd=release).out)["image"]
    assert again["digests"] == image["digests"]
    load = subprocess.run([*docker, "load", "-i", image["path"]], capture_output=True,
                          text=True, check=True)
    tag = "hello-gin:v1.2.3-amd64"
    assert f"Loaded image: {tag}" in load.stdout
    port = free_port()
    name = f"goship-test-{port}"
    subprocess.run([*docker, "run", "-d", "--name", name, "--network", "host", "-e",
                    f"PORT={port}", tag], check=True, capture_output=True)
    try:
        assert wait_http(f"http://127.0.0.1:{port}/health") == b'{"status":"ok"}'
        assert b"hello-gin v1.2.3" in wait_http(f"http://127.0.0.1:{port}/")
        inspect = subprocess.run([*docker, "inspect", name, "--format",
                                  "{{.State.Pid}} {{.Config.User}}"], capture_output=True,
                                 text=True, check=True).stdout.split()
        uid_line = next(line for line in Path(f"/proc/{inspect[0]}/status").read_text()
                        .splitlines() if line.startswith("Uid:"))
        assert uid_line.split()[1] == "65532"  # the process really runs as non-root
        assert inspect[1] == "65532:65532"
    finally:
        subprocess.run([*docker, "rm", "-f", name], capture_output=True, check=False)
        subprocess.run([*docker, "rmi", "-f", tag, "hello-gin:v1.2.3-amd64"],
                       capture_output=True, check=False)


def test_an_image_carries_run_env_but_never_its_secrets(run_cli: Run,
                                                        tmp_path: Path) -> None:
    need("go")
    root = copy_example(tmp_path / "hello-gin")
    toml = root / "goship.toml"
    toml.write_text(toml.read_text().replace(
        '[run.env]\n', '[run.env]\nLOG_LEVEL = "info"\nDB_PASSWORD = "hunter2"\n'
        'DATABASE_URL = "postgres://shop:pw-in-url@db/shop"\n', 1))
    git(root, "commit", "-qam", "env")
    git(root, "tag", "-f", "v1.2.3")
    r = run_cli("package", "--image", "--json", "--skip-checks", cwd=root)
    assert r.code == 0, r.err
    with tarfile.open(json.loads(r.out)["image"]["path"]) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        config = json.loads(tar.extractfile(manifest[0]["Config"]).read())  # type: ignore[union-attr]
    env = config["config"]["Env"]
    assert "LOG_LEVEL=info" in env
    assert not [e for e in env if e.startswith(("DB_PASSWORD=", "DATABASE_URL="))]
    assert "hunter2" not in json.dumps(config)  # not in its labels or history either
    assert "pw-in-url" not in json.dumps(config)


PROJECTS = Path(__file__).resolve().parents[1] / "projects"


def project_repo(name: str, dest: Path, tag: str = "v0.1.0") -> Path:
    shutil.copytree(PROJECTS / name, dest, ignore=shutil.ignore_patterns("dist"))
    git(dest, "init", "-q")
    git(dest, "add", ".")
    git(dest, "commit", "-qm", name)
    git(dest, "tag", tag)
    return dest


def file_of(path: Path) -> str:
    return subprocess.run(["file", "-b", str(path)], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def cgo_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need("go")
    need("gcc")
    return project_repo("build-cgo-sqlite", tmp_path_factory.mktemp("cgo") / "cgo-sqlite")


def test_cgo_sqlite_builds_with_cgo_and_opens_a_database(run_cli: Run, cgo_repo: Path,
                                                        tmp_path: Path) -> None:
    r = run_cli("-v", "build", "--json", cwd=cgo_repo)
    assert r.code == 0, r.err
    assert "linux/amd64: cgo, native, cc" in r.err
    assert "CGO_ENABLED=1 go build -trimpath -mod=readonly -ldflags '-s -w -B gobuildid'" \
        in r.err  # -v prints the exact command
    artifact = json.loads(r.out)["artifacts"][0]
    assert artifact["cgo"] == "native, cc"
    binary = Path(artifact["path"])
    assert "dynamically linked" in file_of(binary)
    assert file_of(binary).rstrip().endswith(", stripped")
    run = subprocess.run([str(binary), "check", str(tmp_path / "notes.db")],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("sqlite 3.")
    assert run.stdout.endswith("rows=1\n")


def test_cgo_build_is_reproducible_across_directories(run_cli: Run, cgo_repo: Path,
                                                      tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "cgo-sqlite"
    subprocess.run(["git", "clone", "-q", str(cgo_repo), str(other)], check=True)
    shas = []
    for d in (cgo_repo, other):
        r = run_cli("build", "--skip-checks", "--json", cwd=d)
        assert r.code == 0, r.err
        shas.append(json.loads(r.out)["artifacts"][0]["sha256"])
    assert shas[0] == shas[1]


def test_cgo_dependency_with_cgo_off_is_refused_with_the_fix(run_cli: Run,
                                                             tmp_path: Path) -> None:
    repo = project_repo("build-cgo-sqlite", tmp_path / "nocgo")
    toml = repo / "goship.toml"
    toml.write_text(toml.read_text().replace("cgo = true", "cgo = false"))
    git(repo, "commit", "-qam", "cgo off")
    r = run_cli("build", "--skip-checks", cwd=repo)
    assert r.code == 2
    assert r.err.endswith("build.cgo: github.com/mattn/go-sqlite3 needs cgo (C code; with "
                          "CGO off it fails to build or is a stub that fails at run time); "
                          "set build.cgo = true (and install gcc)\n")
    assert not (repo / "dist").exists()


def test_cgo_cross_build_with_zig_or_a_refusal_naming_the_fix(run_cli: Run,
                                                              cgo_repo: Path) -> None:
    from goship.build.gobuild import find_zig

    r = run_cli("build", "--skip-checks", "--target", "linux/arm64", "--json", cwd=cgo_repo)
    if find_zig() is None:
        # Without zig (the ziglang extra) or a named cross-compiler: refused before building.
        assert r.code == 2
        assert "build.cgo: linux/arm64: build.cgo = true and linux/arm64 is a cross-compile " \
               "from linux/amd64: no C compiler for it" in r.err
        assert 'build.cc."linux/arm64" = "aarch64-linux-gnu-gcc"' in r.err
        assert "goship[zig]" in r.err
        return
    assert r.code == 0, r.err
    assert "linux/arm64: cgo, zig cc -target aarch64-linux-gnu" in r.err
    binary = Path(json.loads(r.out)["artifacts"][0]["path"])
    assert "ARM aarch64" in file_of(binary)
    assert file_of(binary).rstrip().endswith(", stripped")  # zig's linker strips too


def test_cgo_cross_compiler_not_installed_is_refused(run_cli: Run, tmp_path: Path) -> None:
    repo = project_repo("build-cgo-sqlite", tmp_path / "cc")
    toml = repo / "goship.toml"
    toml.write_text(toml.read_text() + '\n[build.cc]\n"linux/arm64" = "no-such-gcc"\n')
    git(repo, "commit", "-qam", "cc")
    r = run_cli("build", "--target", "linux/arm64", cwd=repo)
    assert r.code == 2
    assert "build.cgo: linux/arm64: build.cc.\"linux/arm64\" = 'no-such-gcc': no-such-gcc is " \
           "not on PATH; apt-get install gcc-aarch64-linux-gnu" in r.err
    assert not (repo / "dist").exists()


@pytest.fixture
def embed_repo(tmp_path: Path) -> Path:
    need("go")
    return project_repo("build-embed-ui", tmp_path / "embed-ui")


def test_embedded_ui_made_by_build_before(run_cli: Run, embed_repo: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UI_FLAVOR", "blue")
    r = run_cli("package", "--json", cwd=embed_repo)
    assert r.code == 0, r.err
    assert "[before 1] $ sh scripts/build-ui.sh" in r.err
    assert "[before 1] built build/index.html" in r.err  # the step's output, streamed
    first = json.loads(r.out)
    version = first["version"]
    assert version.startswith("v0.1.0+gen.")  # the commit plus generated files, labelled
    binary = embed_repo / "dist" / version.replace("+", "-") / "linux_amd64" / "embed-ui"
    page = subprocess.run([str(binary), "cat"], capture_output=True, text=True, check=True)
    assert page.stdout == "<h1>embedded ui</h1>\n<p>flavor blue</p>\n"
    with tarfile.open(first["packages"][0]["path"]) as tar:
        f = tar.extractfile("manifest.json")
        assert f is not None
        meta = json.loads(f.read())
    assert meta["version"] == version
    assert meta["generated"]["files"] == ["build/index.html"]
    assert version.endswith(meta["generated"]["digest"][:8])
    # Same produced files: the same release id. Different ones: a different id.
    again = json.loads(run_cli("package", "--json", cwd=embed_repo).out)
    assert again["packages"][0]["release_id"] == first["packages"][0]["release_id"]
    monkeypatch.setenv("UI_FLAVOR", "green")
    other = json.loads(run_cli("package", "--json", cwd=embed_repo).out)
    assert other["version"] != version
    assert other["packages"][0]["release_id"] != first["packages"][0]["release_id"]


def test_unmatched_embed_pattern_names_the_pattern_and_the_fix(run_cli: Run,
                                                               embed_repo: Path) -> None:
    toml = embed_repo / "goship.toml"
    toml.write_text(toml.read_text().replace('before = ["sh scripts/build-ui.sh"]', ""))
    git(embed_repo, "commit", "-qam", "no step")
    r = run_cli("build", "--skip-checks", cwd=embed_repo)
    assert r.code == 2
    assert f"//go:embed pattern 'build/*' (main.go:11:12) matches no files in {embed_repo}; " \
           "add a build.before step that produces it" in r.err
    toml.write_text(toml.read_text().replace("[build]", '[build]\nbefore = ["exit 3"]'))
    git(embed_repo, "commit", "-qam", "failing step")
    r = run_cli("build", "--skip-checks", cwd=embed_repo)
    assert r.code == 1
    assert "build.before[0] `exit 3` exited 3" in r.err
    # A step that edits a file git tracks: the tree is no longer the commit.
    toml.write_text(toml.read_text().replace('"exit 3"', '"echo edit >> web/index.src.html"'))
    git(embed_repo, "commit", "-qam", "editing step")
    r = run_cli("build", "--skip-checks", cwd=embed_repo)
    assert r.code == 2
    assert "build.before changed files git tracks: the working tree has uncommitted changes " \
           "(web/index.src.html)" in r.err
    assert not (embed_repo / "dist").exists()


def test_vendored_module_builds_with_mod_vendor_and_goflags_is_respected(
        run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = copy_example(tmp_path / "vendored")
    subprocess.run(["go", "mod", "vendor"], cwd=repo, check=True, capture_output=True)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "vendor")
    # No module cache and no proxy: only vendor/ can provide the dependencies.
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("GOPROXY", "off")
    r = run_cli("-v", "build", "--skip-checks", "--json", cwd=repo)
    assert r.code == 0, r.err
    assert "-mod=vendor (vendor/ is present)" in r.err
    assert "go build -trimpath -mod=vendor " in r.err
    monkeypatch.setenv("GOFLAGS", "-mod=mod")
    r = run_cli("-v", "build", "--skip-checks", cwd=repo)
    assert "-mod=mod (from GOFLAGS)" in r.err
    assert "go build -trimpath -mod=mod " in r.err
