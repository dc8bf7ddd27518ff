"""The fleet rules of a deploy, on lab hosts: deploy.max_failures in a rolling deploy,
deploy.on_unreachable = "skip", --wait on the lock, and the local and remote hooks."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import CliResult
from tests.e2e.conftest import Lab
from tests.e2e.helpers import Project

pytestmark = [pytest.mark.lab, pytest.mark.slow]
Run = Callable[..., CliResult]
HOSTS = {"h1": "10.78.0.11", "h2": "10.78.0.12", "h3": "10.78.0.13"}
NAME = "rules.lab.test"

TOML = f"""
[app]
name = "rules"
version = "git"

[app.stamp]
"main.version" = "{{version}}"

[build]
assets = ["templates", "static"]

[run]
base_port = 9600
drain_timeout = 3.0

[run.health]
interval = 0.2
deadline = 8.0

[proxy]
server_names = ["{NAME}"]

[deploy.hooks]
pre_deploy = ["echo \\"pre $GOSHIP_ENV\\" >> hooks.log"]
post_deploy = ["echo \\"post $GOSHIP_ENV $GOSHIP_RELEASE\\" >> hooks.log"]
pre_deploy_remote = ["echo \\"$GOSHIP_HOST $GOSHIP_RELEASE\\" > /tmp/rules-pre-hook",
                     "test ! -e /tmp/rules-fail"]
post_deploy_remote = ["cat /srv/rules/current/manifest.json > /tmp/rules-post-hook"]

[env.rl]
lab = 3
[env.rl.deploy]
strategy = "rolling"
batch = 1
max_failures = 1

[env.skip]
lab = 3
[env.skip.deploy]
on_unreachable = "skip"
"""


def version(host: str) -> str:
    req = urllib.request.Request(f"http://{HOSTS[host]}/version", headers={"Host": NAME})
    with urllib.request.urlopen(req, timeout=5) as r:
        return str(json.loads(r.read())["version"])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[Project]:
    p = Project(tmp_path_factory.mktemp("rules") / "rules", TOML)
    (p.root / ".gitignore").write_text("dist/\nhooks.log\n")
    p.release("v1.0.0")
    yield p
    lab.remove_app("rules", HOSTS, "goship-rules-standby-*")


def deploy(run_cli: Run, project: Project, *args: str) -> CliResult:
    return run_cli("deploy", *args, "--skip-checks", cwd=project.root)


def test_hooks_run_here_and_on_every_host(run_cli: Run, project: Project, lab: Lab) -> None:
    r = deploy(run_cli, project, "rl")
    assert r.code == 0, r.out + r.err
    release = json.loads(lab.ssh("h1", "cat /srv/rules/state.json").stdout)["live"]["release"]
    log = (project.root / "hooks.log").read_text().splitlines()
    assert log == ["pre rl", f"post rl {release}"]
    for h in HOSTS:
        assert lab.ssh(h, "cat /tmp/rules-pre-hook").stdout.split() == [h, release]
        manifest = json.loads(lab.ssh(h, "cat /tmp/rules-post-hook").stdout)
        assert manifest["version"] == "v1.0.0"  # ran after the switch: current is v1


def test_a_failing_remote_hook_fails_the_deploy_and_restores(run_cli: Run, project: Project,
                                                             lab: Lab) -> None:
    toml = (project.root / "goship.toml").read_text()
    project.toml = TOML.replace('test ! -e /tmp/rules-fail"]',
                                'test $GOSHIP_HOST != h2"]')
    project.release("v1.1.0")
    try:
        r = deploy(run_cli, project, "skip")  # blue-green: every host switches or none
        assert r.code == 1
        assert "h2: hook `test $GOSHIP_HOST != h2`" in r.out + r.err
        assert [version(h) for h in HOSTS] == ["v1.0.0"] * 3  # h1 restored too
    finally:
        project.toml = TOML
        (project.root / "goship.toml").write_text(toml)


def test_rolling_goes_on_within_max_failures(run_cli: Run, project: Project,
                                             lab: Lab) -> None:
    # h2 refuses the release (its pre-switch hook fails): it cannot go live there. (A held
    # port would not do: the port preflight moves the color off it.)
    lab.ssh("h2", "touch /tmp/rules-fail")
    try:
        project.release("v2.0.0")
        r = deploy(run_cli, project, "rl")
        assert r.code == 0, r.out + r.err
        assert "1 host(s) failed within deploy.max_failures and serve their old release: " \
               "h2" in r.err
        assert "h2: v1.1.0-" not in r.out  # its line names the release it still serves
        assert [version(h) for h in HOSTS] == ["v2.0.0", "v1.0.0", "v2.0.0"]
        last = json.loads(lab.ssh("h2", "tail -n1 /srv/rules/journal.jsonl").stdout)
        assert last["outcome"] == "restored"
        state = json.loads(lab.ssh("h2", "cat /srv/rules/state.json").stdout)
        assert state["live"]["release"].startswith("v1.0.0-")
        # A second failure is one too many: the deploy fails, and h1, which had finished,
        # goes back to what it served.
        lab.ssh("h3", "touch /tmp/rules-fail")
        project.release("v2.1.0")
        r = deploy(run_cli, project, "rl")
        assert r.code == 1, r.out + r.err
        assert "restored: " in r.out
        assert [version(h) for h in HOSTS] == ["v2.0.0", "v1.0.0", "v2.0.0"]
    finally:
        for h in ("h2", "h3"):
            lab.ssh(h, "rm -f /tmp/rules-fail", check=False)


def test_unreachable_hosts_are_skipped_when_asked(run_cli: Run, project: Project,
                                                  lab: Lab) -> None:
    from goship.lab import hosts

    project.release("v3.0.0")
    hosts.cut("h3")
    try:
        r = deploy(run_cli, project, "skip")
        assert r.code == 0, r.out + r.err
        assert 'h3: unreachable, skipped (deploy.on_unreachable = "skip")' in r.err
        assert "on 2 host(s)" in r.out
    finally:
        hosts.heal("h3")
    assert [version(h) for h in HOSTS] == ["v3.0.0", "v3.0.0", "v2.0.0"]


def test_wait_takes_the_lock_once_it_is_free(run_cli: Run, project: Project) -> None:
    from goship.config import load
    from goship.deploy.engine import close, connect
    from goship.deploy.host import Lock

    env = load(project.root / "goship.toml").env("rl")
    held = connect(env)
    lock = Lock(held, "goship deploy rl (the other one)", force=False)
    lock.acquire()

    def other_release_ends() -> None:
        for h in held:  # it wrote the hosts' state, as a release does
            h.write_state()
        lock.release()

    timer = threading.Timer(4.0, other_release_ends)
    timer.start()
    try:
        r = run_cli("rollback", "rl", "--wait", cwd=project.root)
        assert r.code == 0, r.out + r.err
        assert "waiting: " in r.err
        assert "goship deploy rl (the other one)" in r.err
        # what it read before waiting is out of date: read again, planned again
        assert "another release ran while goship waited; reading the hosts again" in r.err
    finally:
        timer.join()
        close(held)


def test_a_canary_waits_too(run_cli: Run, project: Project, lab: Lab) -> None:
    """`deploy --canary --wait` behind another release's lock: it waits, plans again from
    what that release left, and goes on (a step of 100: started, then promoted)."""
    from goship.config import load
    from goship.deploy.engine import close, connect
    from goship.deploy.host import Lock

    project.release("v3.9.0")
    # The rolling deploy that max_failures stopped left the hosts on different colors: each
    # runs the canary on its own other color, and the promotion switches each to it.
    colors = {h: json.loads(lab.ssh(h, "cat /srv/rules/state.json").stdout)["live"]["color"]
              for h in HOSTS}
    env = load(project.root / "goship.toml").env("rl")
    held = connect(env)
    lock = Lock(held, "goship deploy rl (another one)", force=False)
    lock.acquire()

    def other_release_ends() -> None:
        for h in held:
            h.write_state()
        lock.release()

    timer = threading.Timer(4.0, other_release_ends)
    timer.start()
    try:
        r = run_cli("deploy", "rl", "--canary", "--wait", "--steps", "100", "--skip-checks",
                    cwd=project.root)
        assert r.code == 0, r.out + r.err
        assert "waiting: " in r.err
        assert "another release ran while goship waited; reading the hosts again" in r.err
    finally:
        timer.join()
        close(held)
    assert [version(h) for h in HOSTS] == ["v3.9.0"] * 3, colors  # promoted everywhere
    state = json.loads(lab.ssh("h1", "cat /srv/rules/state.json").stdout)
    assert state["live"]["release"].startswith("v3.9.0")


def environ(lab: Lab, host: str) -> dict[str, str]:
    """The environment of the live color's running instance."""
    state = json.loads(lab.ssh(host, "cat /srv/rules/state.json").stdout)
    port = state["ports"][state["live"]["color"]][0]
    pid = lab.ssh(host, f"systemctl show -p MainPID --value rules-{state['live']['color']}"
                        f"@{port}").stdout.strip()
    raw = lab.ssh(host, f"tr '\\0' '\\n' < /proc/{pid}/environ").stdout
    return dict(line.split("=", 1) for line in raw.splitlines() if "=" in line)


def test_rollback_brings_back_the_environment_and_a_canary_leaves_stable_alone(
        run_cli: Run, project: Project, lab: Lab) -> None:
    """A release is its binary and its configuration: rolling back a bad setting works
    even though goship.toml still holds it."""
    project.release("v4.0.0", MARKER="four")
    r = deploy(run_cli, project, "skip")
    assert r.code == 0, r.out + r.err
    assert environ(lab, "h1")["MARKER"] == "four"
    project.release("v5.0.0", MARKER="five")
    r = deploy(run_cli, project, "skip")
    assert r.code == 0, r.out + r.err
    assert environ(lab, "h1")["MARKER"] == "five"
    r = run_cli("rollback", "skip", cwd=project.root)  # goship.toml still says "five"
    assert r.code == 0, r.out + r.err
    assert [version(h) for h in HOSTS] == ["v4.0.0"] * 3
    assert {environ(lab, h)["MARKER"] for h in HOSTS} == {"four"}
    # a canary runs with its own environment; the stable color's file is untouched
    project.release("v6.0.0", MARKER="six")
    state = json.loads(lab.ssh("h1", "cat /srv/rules/state.json").stdout)
    stable_env = f"/srv/rules/shared/env.{state['live']['color']}"
    r = run_cli("canary", "start", "skip", "--weight", "0", "--skip-checks",
                cwd=project.root)
    try:
        assert r.code == 0, r.out + r.err
        assert "MARKER=four" in lab.ssh("h1", f"cat {stable_env}").stdout
    finally:
        run_cli("canary", "abort", "skip", cwd=project.root)
