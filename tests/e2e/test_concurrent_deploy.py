"""Two `goship deploy` of the same environment at once, as two processes sharing the SSH
masters, under a steady load: the one holding the lock completes, the other is refused
(exit 4) without harming it, and no request fails."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Lab
from tests.e2e.helpers import Project
from tests.e2e.load import Load

pytestmark = [pytest.mark.lab, pytest.mark.slow]
HOSTS = {"h1": "10.78.0.11", "h2": "10.78.0.12"}
NAME = "race.lab.test"

TOML = f"""
[app]
name = "race"
version = "git"

[app.stamp]
"main.version" = "{{version}}"

[build]
assets = ["templates", "static"]

[run]
base_port = 9400
drain_timeout = 3.0

[run.health]
interval = 0.2
deadline = 30.0

[proxy]
server_names = ["{NAME}"]

[env.lab]
lab = 2
"""


def version(host: str) -> str:
    req = urllib.request.Request(f"http://{HOSTS[host]}/version", headers={"Host": NAME})
    with urllib.request.urlopen(req, timeout=5) as r:
        return str(json.loads(r.read())["version"])


def goship(*args: str) -> list[str]:
    return [sys.executable, "-m", "goship", *args]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[Project]:
    p = Project(tmp_path_factory.mktemp("race") / "race", TOML)
    (p.root / ".gitignore").write_text("dist/\n")
    p.release("v1.0.0")
    first = subprocess.run(goship("deploy", "lab", "--skip-checks"), cwd=p.root,
                           capture_output=True, text=True, check=False, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    yield p
    lab.remove_app("race", HOSTS)


def starting(lab: Lab, host: str, tag: str) -> None:
    """Until `tag` is starting on a color of `host`: the deploy holds the lock, mid-way."""
    script = ("for c in blue green; do readlink /srv/race/$c | grep -q -- " + tag +
              " && systemctl list-units --no-legend --state=active \"race-$c@*\" "
              "| grep -q . && echo yes; done; true")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if "yes" in lab.ssh(host, script).stdout:
            return
        time.sleep(0.1)
    raise AssertionError(f"{tag} never started on {host}")


def test_the_second_deploy_is_refused_and_the_first_completes(project: Project,
                                                              lab: Lab) -> None:
    assert version("h1") == version("h2") == "v1.0.0"
    # a slow start keeps the first deploy holding the lock while the second one builds
    project.release("v1.1.0", HELLO_TEST_START_DELAY="12s")
    load = Load(f"http://{HOSTS['h1']}/api/items")
    load.argv[1:1] = ["-H", f"Host: {NAME}"]
    with load:
        first = subprocess.Popen(goship("deploy", "lab", "--skip-checks"),
                                 cwd=project.root, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        try:
            starting(lab, "h1", "v1.1.0")
            second = subprocess.run(goship("deploy", "lab", "--skip-checks"),
                                    cwd=project.root, capture_output=True, text=True,
                                    check=False, timeout=300)
            out, _ = first.communicate(timeout=600)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
    # refused (not made to wait), naming the first deploy, which it left unharmed
    assert second.returncode == 4, second.stdout + second.stderr
    assert "another goship holds the deploy lock" in second.stderr
    assert f"pid {first.pid}, `goship deploy lab`" in second.stderr
    assert "waiting" not in second.stdout + second.stderr
    assert first.returncode == 0, out
    assert version("h1") == version("h2") == "v1.1.0"
    assert load.result.requests > 0, load.result.text
    assert load.result.failed == 0, load.result.text
    for h in HOSTS:
        last = json.loads(lab.ssh(h, "tail -n1 /srv/race/journal.jsonl").stdout)
        assert (last["action"], last["outcome"]) == ("deploy", "ok")
        assert lab.ssh(h, "test -e /srv/race/.lock", check=False).returncode == 1
