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


def test_untidy_module_fails_with_the_diff_and_fix_repairs_it(run_cli: Run,
                                                              tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "untidy")
    gomod = repo / "go.mod"
    gomod.write_text(gomod.read_text().replace("require github.com/gin-gonic/gin",
                                               "require github.com/gin-gonic/gin", 1)
                     + "\nrequire github.com/google/uuid v1.6.0\n")
    git(repo, "commit", "-qam", "untidy")
    r = run_cli("build", cwd=repo)
    assert r.code == 2, r.err
    assert "go.mod/go.sum are not tidy (diff above); run `go mod tidy`, or pass --fix" in r.err
    assert "-require github.com/google/uuid v1.6.0" in r.err
    r = run_cli("build", "--fix", "--allow-dirty", cwd=repo)
    assert r.code == 0, r.err
    assert "google/uuid" not in gomod.read_text()


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
