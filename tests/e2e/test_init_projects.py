"""`goship init` on the example services of tests/projects/, each shaped like a real Gin
service: init's facts against the truth each project's README states, then each service is
built the way the config says and started the way the config says, and answers its health
route on the port goship gave it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from goship.config import parse
from goship.config.model import Config
from tests.conftest import REPO, CliResult, need
from tests.e2e.helpers import free_port

pytestmark = pytest.mark.slow
PROJECTS = REPO / "tests" / "projects"
Run = Callable[..., CliResult]


@dataclass
class Truth:
    name: str
    health: str
    args: list[str]
    port_env: str = "PORT"
    base_port: int = 8080
    files: list[str] = field(default_factory=list)
    config_files: list[str] = field(default_factory=list)
    data_dirs: list[str] = field(default_factory=list)
    cgo: bool = False
    before: list[str] = field(default_factory=list)
    stamp: dict[str, str] = field(default_factory=dict)
    warns: list[str] = field(default_factory=list)  # init must say these
    quiet: list[str] = field(default_factory=list)  # and must not say these


TRUTH = {
    "yaml-config": Truth(
        name="notes-yaml", health="/healthz", args=[], base_port=8090,
        files=["config.yaml"], config_files=["config.yaml"], data_dirs=["data"],
        stamp={"main.version": "{version}"},
        warns=["replace 8090 there with {port}"], quiet=["SIGTERM"]),
    "admin-cli": Truth(
        name="admin", health="/api/v1/health",
        args=["server", "-c", "config/settings.yml", "--addr", ":{port}"], base_port=8000,
        files=["config/settings.yml"],
        stamp={"main.Version": "{version}", "main.BuiltAt": "{build_time}",
               "main.Mode": "prod"},
        quiet=["SIGTERM", "no health route"]),
    "sqlite-data": Truth(
        name="visits", health="/health", args=[], data_dirs=["data"], cgo=True,
        stamp={"main.Version": "{version}", "main.GitCommit": "{commit}"},
        quiet=["SIGTERM", "port"]),
    "embed-ui": Truth(
        name="dashboard", health="/readyz", args=[], port_env="HTTP_PORT", base_port=8300,
        before=["make ui"], stamp={"main.Commit": "{commit}"}, quiet=["SIGTERM"]),
    "sigint-flag": Truth(
        name="pinger", health="/health", args=["--port", "{port}"], base_port=8070,
        stamp={"main.version": "{version}"},
        warns=["only os.Interrupt/SIGINT is caught (main.go:36)"]),
}


def checkout(name: str, tmp_path: Path) -> Path:
    """The project as a user has it: a git repository of its tracked files only."""
    dest = tmp_path / name
    shutil.copytree(PROJECTS / name, dest)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "."], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "initial"], cwd=dest, check=True)
    return dest


def build(root: Path, cfg: Config) -> Path:
    for step in cfg.build.before:
        subprocess.run(["sh", "-c", step], cwd=root, check=True, timeout=120)
    out = root / "bin" / "service"
    ldflags = " ".join(f"-X {k}={v}" for k, v in cfg.app.stamp.items() if "{" not in v)
    env = {**os.environ, "CGO_ENABLED": "1" if cfg.build.cgo else "0", "GOFLAGS": "-mod=mod",
           "GOPROXY": "off"}
    res = subprocess.run(["go", "build", "-ldflags", ldflags, "-o", str(out), "./" + cfg.app.main],
                         cwd=root, env=env, capture_output=True, text=True, timeout=600,
                         check=False)
    assert res.returncode == 0, res.stderr
    return out


def get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


def start(root: Path, binary: Path, cfg: Config, port: int) -> subprocess.Popen[bytes]:
    """Start one instance the way goship does: args with {port} expanded, the port in
    port_env, {port} rendered into run.config_files."""
    for rel in cfg.run.config_files:
        path = root / rel
        path.write_text(path.read_text().replace("{port}", str(port)))
    args = [a.replace("{port}", str(port)).replace("{color}", "blue") for a in cfg.run.args]
    env = {"PATH": os.environ["PATH"], cfg.run.port_env: str(port), **cfg.run.env}
    return subprocess.Popen([str(binary), *args], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("name", sorted(TRUTH))
def test_init_reads_the_project_as_it_is(run_cli: Run, tmp_path: Path, name: str) -> None:
    need("go")
    if TRUTH[name].cgo:
        need("gcc")
    truth = TRUTH[name]
    root = checkout(name, tmp_path)
    r = run_cli("init", str(root))
    assert r.code == 0, r.err
    text = (root / "goship.toml").read_text()
    cfg = parse(tomllib.loads(text)).base
    assert cfg.app.name == truth.name
    assert cfg.run.health.path == truth.health
    assert cfg.run.args == truth.args
    assert cfg.run.port_env == truth.port_env
    assert cfg.run.base_port == truth.base_port
    assert cfg.build.files == truth.files
    assert cfg.run.config_files == truth.config_files
    assert cfg.run.data_dirs == truth.data_dirs
    assert cfg.build.cgo == truth.cgo
    assert cfg.build.before == truth.before
    assert cfg.app.stamp == truth.stamp
    assert "fact" in r.err
    assert "certainty" in r.err  # the facts table
    for w in truth.warns:
        assert w in r.err
    for q in truth.quiet:
        assert not any(q in line for line in r.err.splitlines() if line.startswith("warning"))

    # The user's one edit init asks for: {port} in place of the number in the config file.
    for rel in cfg.run.config_files:
        path = root / rel
        path.write_text(path.read_text().replace(str(truth.base_port), "{port}"))

    binary = build(root, cfg)
    port = free_port()
    proc = start(root, binary, cfg, port)
    try:
        deadline = time.monotonic() + 20
        status = 0
        while time.monotonic() < deadline and status != 200:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                status = get(port, truth.health)
            except OSError:
                time.sleep(0.1)
        assert status == 200, f"{truth.health} on {port}: {status}"
        for d in truth.data_dirs:
            assert (root / d).is_dir(), f"the service did not write {d}/"
    finally:
        proc.kill()
        proc.wait()
