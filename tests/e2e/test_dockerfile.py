"""The rendered Dockerfile, built for real by the Docker engine with its legacy builder.

No image can be pulled here, so the pinned builder image (golang:X-bookworm) is stood in
for by a local one imported from this machine: its Go toolchain, busybox for the shell,
CA certificates and a module cache with the example's modules (GOPROXY=off, no network
during the build). Everything after FROM is the Dockerfile users get."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from goship.config import load
from goship.render.inputs import RenderInput
from goship.render.kinds import render_kind
from tests.conftest import EXAMPLE, need
from tests.e2e.helpers import free_port
from tests.e2e.test_build_package import wait_http

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "mkdir", "chmod", "cp", "ls", "cat")


def go_env(go: str, name: str) -> str:
    return subprocess.run([go, "env", name], capture_output=True, text=True,
                          check=True).stdout.strip()


def builder_tar(tmp: Path) -> bytes:
    """A root filesystem that does what golang:X-bookworm does for this Dockerfile."""
    go = need("go")
    if not BUSYBOX.exists():
        pytest.skip("needs Debian's busybox-static (a static /bin/busybox)")
    goroot = Path(go_env(go, "GOROOT"))
    modcache = tmp / "modcache"
    host_cache = Path(go_env(go, "GOMODCACHE")) / "cache" / "download"
    subprocess.run([go, "mod", "download"], cwd=EXAMPLE, check=True, timeout=600, env={
        **os.environ, "GOMODCACHE": str(modcache), "GOFLAGS": "-mod=mod",
        "GOPROXY": f"file://{host_cache},{go_env(go, 'GOPROXY')}"})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def directory(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)

        for d in ("bin", "etc", "etc/ssl", "etc/ssl/certs", "root", "go", "usr", "usr/local"):
            directory(d)
        directory("tmp", 0o1777)
        tar.add(BUSYBOX, "bin/busybox")
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        tar.add("/etc/ssl/certs/ca-certificates.crt", "etc/ssl/certs/ca-certificates.crt")
        skip = {"test", "doc", "api", "misc"}
        tar.add(goroot, "usr/local/go",
                filter=lambda ti: None if ti.name.split("/")[3:4] and
                ti.name.split("/")[3] in skip else ti)
        tar.add(modcache, "go/pkg/mod")
    return buf.getvalue()


@pytest.fixture(scope="module")
def builder(docker: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cfg = load(EXAMPLE / "goship.toml").base
    dockerfile = render_kind("dockerfile", RenderInput(config=cfg, root=EXAMPLE))["Dockerfile"]
    image = re.search(r"^ARG GO_IMAGE=(\S+)$", dockerfile, re.M)
    assert image, dockerfile
    tag = image.group(1)
    data = builder_tar(tmp_path_factory.mktemp("builder"))
    changes = ["ENV PATH=/usr/local/go/bin:/go/bin:/bin", "ENV GOPATH=/go",
               "ENV GOPROXY=off", "ENV GOSUMDB=off", "ENV GOTOOLCHAIN=local",
               "ENV HOME=/root", "WORKDIR /go"]
    argv = [*docker, "import"]
    for c in changes:
        argv += ["--change", c]
    subprocess.run([*argv, "-", tag], input=data, check=True, capture_output=True)
    yield tag
    subprocess.run([*docker, "rmi", "-f", tag], capture_output=True, check=False)


def test_dockerfile_builds_from_source_and_runs_healthy_as_non_root(
        tmp_path: Path, docker: list[str], builder: str) -> None:
    ctx = tmp_path / "ctx"
    shutil.copytree(EXAMPLE, ctx, ignore=shutil.ignore_patterns("dist", ".goship"))
    cfg = load(ctx / "goship.toml").base
    for name, text in render_kind("dockerfile", RenderInput(config=cfg, root=ctx,
                                                            version="v4.5.6")).items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_text(text)
    (ctx / ".env.production").write_text("SECRET=never-in-the-image\n")
    tag = "goship-test/hello-gin:v4.5.6"
    build = subprocess.run(
        [*docker, "build", "--network", "none", "--build-arg", "VERSION=v4.5.6",
         "--build-arg", "COMMIT=abc123", "-t", tag, str(ctx)],
        capture_output=True, text=True, check=False, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    port = free_port()
    name = f"goship-test-df-{port}"
    try:
        inspect = subprocess.run([*docker, "image", "inspect", tag, "--format",
                                  "{{.Config.User}}|{{json .Config.Healthcheck.Test}}|"
                                  "{{index .Config.Labels \"org.opencontainers.image.version\"}}"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        user, health, version = inspect.split("|")
        assert user == "65532:65532"
        assert health == '["CMD","/usr/local/bin/goship-probe","/health","PORT"]'
        assert version == "v4.5.6"
        subprocess.run([*docker, "run", "-d", "--name", name, "--network", "host",
                        "--health-interval", "1s", "-e", f"PORT={port}", tag],
                       check=True, capture_output=True)
        # the version stamped at build time, the templates read relative to /app
        assert b"hello-gin v4.5.6" in wait_http(f"http://127.0.0.1:{port}/", deadline=20)
        state = ""
        for _ in range(60):
            state = subprocess.run([*docker, "inspect", name, "--format",
                                    "{{.State.Health.Status}} {{.State.Pid}}"],
                                   capture_output=True, text=True, check=True).stdout
            if state.startswith("healthy"):
                break
            subprocess.run(["sleep", "0.5"], check=True)
        assert state.startswith("healthy"), state
        pid = state.split()[1]
        uid = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                   if line.startswith("Uid:"))
        assert uid.split()[1] == "65532"
        export = subprocess.run([*docker, "export", name], capture_output=True, check=True)
        with tarfile.open(fileobj=io.BytesIO(export.stdout)) as tar:
            members = {m.name.rstrip("/"): m for m in tar.getmembers()}
        assert members["tmp"].mode & 0o7777 == 0o1777
        assert "etc/ssl/certs/ca-certificates.crt" in members
        assert "app/templates/index.tmpl" in members or any(
            n.startswith("app/templates/") for n in members)
        assert not any(".env" in n for n in members)  # .dockerignore kept the secrets out
        assert "bin/sh" not in members  # scratch: no shell in the image
    finally:
        subprocess.run([*docker, "rm", "-f", name], capture_output=True, check=False)
        subprocess.run([*docker, "rmi", "-f", tag], capture_output=True, check=False)


def test_a_failing_health_check_shows_unhealthy(tmp_path: Path, docker: list[str],
                                                builder: str) -> None:
    """The probe can fail: pointed at a path that answers 404, the container turns
    unhealthy."""
    ctx = tmp_path / "ctx"
    shutil.copytree(EXAMPLE, ctx, ignore=shutil.ignore_patterns("dist", ".goship"))
    cfg = load(ctx / "goship.toml").base
    files = render_kind("dockerfile", RenderInput(config=cfg, root=ctx, version="v4.5.6"))
    for name, text in files.items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_text(text.replace('"/health", "PORT"]', '"/nope", "PORT"]'))
    tag = "goship-test/hello-gin:unhealthy"
    # the same build arguments as the test above: the builder stage comes from the cache
    subprocess.run([*docker, "build", "--network", "none", "--build-arg", "VERSION=v4.5.6",
                    "--build-arg", "COMMIT=abc123", "-t", tag, str(ctx)],
                   capture_output=True, check=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    port = free_port()
    name = f"goship-test-df-{port}"
    try:
        subprocess.run([*docker, "run", "-d", "--name", name, "--network", "host",
                        "--health-interval", "1s", "--health-retries", "2",
                        "--health-start-period", "1s", "-e", f"PORT={port}", tag],
                       check=True, capture_output=True)
        wait_http(f"http://127.0.0.1:{port}/health", deadline=20)
        state = ""
        for _ in range(40):
            state = subprocess.run([*docker, "inspect", name, "--format",
                                    "{{.State.Health.Status}}"], capture_output=True,
                                   text=True, check=True).stdout.strip()
            if state == "unhealthy":
                break
            subprocess.run(["sleep", "0.5"], check=True)
        assert state == "unhealthy"
    finally:
        subprocess.run([*docker, "rm", "-f", name], capture_output=True, check=False)
        subprocess.run([*docker, "rmi", "-f", tag], capture_output=True, check=False)


def test_env_values_read_back_by_dockers_parser(tmp_path: Path, docker: list[str]) -> None:
    """The ENV line of the rendered Dockerfile, with hostile values, parsed by the Docker
    engine: each value arrives as written, no instruction is injected, no secret is
    baked in."""
    from goship.config import parse
    from tests.unit.test_render_env import ONE_LINE

    env = {f"V{i}": v for i, v in enumerate(ONE_LINE)}
    cfg = parse({"app": {"name": "shop"},
                 "run": {"env": {**env, "DB_PASSWORD": "never-in-the-image"}}}).base
    dockerfile = render_kind("dockerfile", RenderInput(config=cfg, root=tmp_path))["Dockerfile"]
    env_line = next(line for line in dockerfile.splitlines() if line.startswith("ENV PORT="))
    assert "never-in-the-image" not in dockerfile
    (tmp_path / "Dockerfile").write_text(f"FROM scratch\n{env_line}\n")
    tag = "goship-test/env-quoting:1"
    try:
        subprocess.run([*docker, "build", "--network", "none", "-t", tag, str(tmp_path)],
                       capture_output=True, check=True,
                       env={**os.environ, "DOCKER_BUILDKIT": "0"})
        out = subprocess.run([*docker, "image", "inspect", tag, "--format",
                              "{{json .Config.Env}}"], capture_output=True, text=True,
                             check=True).stdout
        got = dict(item.split("=", 1) for item in json.loads(out))
        assert got.pop("PORT") == "8080"
        got.pop("PATH", None)
        assert got == env
    finally:
        subprocess.run([*docker, "rmi", "-f", tag], capture_output=True, check=False)
