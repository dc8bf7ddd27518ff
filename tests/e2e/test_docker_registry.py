"""[docker] registry on lab hosts: a real distribution registry (built from its Go module)
on h3; goship pushes its image there by digest without a daemon, h1 and h2 pull it by
digest, under a steady load: zero failed requests."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import CliResult
from tests.e2e import registry as lab_registry
from tests.e2e.conftest import Lab
from tests.e2e.helpers import Project
from tests.e2e.load import Load

pytestmark = [pytest.mark.lab, pytest.mark.slow]
Run = Callable[..., CliResult]
H1, H2 = "10.78.0.11:8083", "10.78.0.12:8083"
APP = "reg-app"
REGISTRY = "10.78.0.13:5000"
TOML = f"""
[app]
name = "{APP}"
[app.stamp]
"main.version" = "{{version}}"
[build]
assets = ["templates", "static"]
[run]
manager = "docker"
base_port = 9600
drain_timeout = 3.0
[run.health]
interval = 0.2
[proxy]
listen = 8083
[docker]
registry = "{REGISTRY}/team/{APP}"
registry_insecure = true
[env.lab]
lab = 2
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, docker_lab: Lab) -> Iterator[str]:
    """The distribution registry, built from its Go module here, running on h3."""
    address = lab_registry.serve(docker_lab, tmp_path_factory.mktemp("registry"))
    assert address == REGISTRY
    yield address
    lab_registry.stop(docker_lab, forget=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, docker_lab: Lab,
            registry: str) -> Iterator[Project]:
    p = Project(tmp_path_factory.mktemp("docker-registry") / "app", TOML)
    p.release("v1.0.0")
    yield p
    for h in ("h1", "h2"):
        docker_lab.ssh(h, f"docker rm -f $(docker ps -aq --filter label=io.goship.app={APP}) "
                          f"2>/dev/null; systemctl stop 'goship-{APP}-standby-*' 2>/dev/null",
                       check=False)
    docker_lab.remove_app(APP, ["h1", "h2"])


def version(addr: str) -> str:
    with urllib.request.urlopen(f"http://{addr}/version", timeout=5) as r:
        return str(json.loads(r.read())["version"])


def test_hosts_pull_goships_image_by_digest(run_cli: Run, project: Project,
                                            docker_lab: Lab) -> None:
    doctor = run_cli("doctor", "lab", cwd=project.root)
    assert f"ok   local: registry: {REGISTRY}: answers, no login asked" in doctor.out, doctor.out
    r = run_cli("deploy", "lab", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    project.release("v1.1.0")
    with Load(f"http://{H1}/api/items") as load:
        r = run_cli("deploy", "lab", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert version(H1) == version(H2) == "v1.1.0"
    assert load.result.failed == 0, load.result.text
    # the registry has the release under its id, and each host's image came from there
    tags = json.loads(urllib.request.urlopen(
        f"http://{REGISTRY}/v2/team/{APP}/tags/list", timeout=5).read())["tags"]
    assert sorted(t.split("-")[0] for t in tags) == ["v1.0.0", "v1.1.0"]
    for h in ("h1", "h2"):
        state = json.loads(docker_lab.ssh(h, f"cat /srv/{APP}/state.json").stdout)
        ref = f"goship-{APP}:{state['live']['release']}"
        digests = json.loads(docker_lab.ssh(
            h, f"docker image inspect --format '{{{{json .RepoDigests}}}}' {ref}").stdout)
        assert any(d.startswith(f"{REGISTRY}/team/{APP}@sha256:") for d in digests), digests


def test_an_unreachable_registry_is_one_line_and_changes_nothing(
        run_cli: Run, project: Project, docker_lab: Lab) -> None:
    lab_registry.stop(docker_lab)
    try:
        project.release("v1.2.0")
        r = run_cli("deploy", "lab", "--skip-checks", cwd=project.root)
        assert r.code == 1, r.out + r.err
        assert f"registry http://{REGISTRY}" in r.out
        assert version(H1) == version(H2) == "v1.1.0"
    finally:
        lab_registry.start(docker_lab, check=False)


def test_hosts_pull_from_a_registry_with_a_login_and_keep_no_credentials(
        run_cli: Run, project: Project, docker_lab: Lab,
        tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same registry refusing anonymous calls (htpasswd): goship pushes with the login
    read from its own environment, each host pulls logged in for that pull only, and no
    host keeps the credentials (no Docker config written, the password in no argv)."""
    user, password = "deployer", "hosts-pw-$(id)-'x'"
    lab_registry.stop(docker_lab)
    lab_registry.serve(docker_lab, tmp_path_factory.mktemp("registry-login"),
                       login=(user, password))
    try:
        project.toml = project.toml.replace(
            "registry_insecure = true\n",
            f'registry_insecure = true\nregistry_username = "{user}"\n'
            'registry_password_var = "REGISTRY_PASSWORD"\n')
        project.release("v1.3.0")
        monkeypatch.delenv("REGISTRY_PASSWORD", raising=False)
        r = run_cli("deploy", "lab", "--skip-checks", cwd=project.root)
        assert r.code == 2, r.out + r.err
        assert "REGISTRY_PASSWORD is not set in goship's environment" in r.err
        assert version(H1) == version(H2) == "v1.1.0"  # nothing built, nothing sent
        monkeypatch.setenv("REGISTRY_PASSWORD", password)
        doctor = run_cli("doctor", "lab", cwd=project.root)
        assert f"ok   local: registry: {REGISTRY}: login as {user} accepted" in doctor.out, \
            doctor.out
        with Load(f"http://{H1}/api/items") as load:
            r = run_cli("-v", "deploy", "lab", "--skip-checks", cwd=project.root)
        assert r.code == 0, r.out + r.err
        assert password not in r.out + r.err
        assert version(H1) == version(H2) == "v1.3.0"
        assert load.result.failed == 0, load.result.text
        for h in ("h1", "h2"):
            # pulled from the registry (by digest), and no login left behind anywhere
            state = json.loads(docker_lab.ssh(h, f"cat /srv/{APP}/state.json").stdout)
            ref = f"goship-{APP}:{state['live']['release']}"
            digests = docker_lab.ssh(
                h, f"docker image inspect --format '{{{{json .RepoDigests}}}}' {ref}").stdout
            assert f"{REGISTRY}/team/{APP}@sha256:" in digests
            left = docker_lab.ssh(h, "grep -rlsD skip deployer /root/.docker /tmp; true"
                                  ).stdout.strip()
            assert left == "", left
    finally:
        lab_registry.stop(docker_lab, forget=True)
