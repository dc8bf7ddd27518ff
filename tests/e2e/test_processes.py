"""[processes.*] on a lab host (real systemd, sshd, nginx) under a steady load: a worker
(two instances) and a scheduled job built from other main packages of the module, shipped
in the release, switched with the web process with 0 failed requests; a worker that
crashes aborts the deploy with nothing switched and the old worker still running;
rollback brings the old worker back; status lists them. The project is examples/hello-gin
plus tests/projects/procs/cmd (its README says what each main does)."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import CliResult
from tests.e2e.conftest import Lab
from tests.e2e.helpers import Project
from tests.e2e.load import Load

pytestmark = [pytest.mark.lab, pytest.mark.slow]
Run = Callable[..., CliResult]
H1 = "10.78.0.11"
APP, LISTEN = "procapp", 8141
DATA = f"/srv/{APP}/shared/data"
CMD = Path(__file__).resolve().parents[1] / "projects" / "procs" / "cmd"

TOML = f"""
[app]
name = "{APP}"

[app.stamp]
"main.version" = "{{version}}"

[build]
assets = ["templates", "static"]

[run]
base_port = 9400
drain_timeout = 5.0

[run.health]
interval = 0.2
deadline = 15.0
min_uptime = 3.0

[proxy]
listen = {LISTEN}

[processes.worker]
main = "cmd/worker"
instances = 2
env = {{ QUEUE = "redis://queue:6379/0" }}

[processes.mailer]
main = "cmd/mailer"
overlap = false

[processes.nightly]
main = "cmd/nightly"
schedule = "*:*:0/5"

[env.lab]
lab = 1
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[Project]:
    p = Project(tmp_path_factory.mktemp("procs") / APP, TOML)
    shutil.copytree(CMD, p.root / "cmd")
    (p.root / ".gitignore").write_text("dist/\n")
    p.release("v1.0.0")
    yield p
    lab.remove_app(APP, ["h1"], f"'{APP}.*'")


def served() -> str:
    with urllib.request.urlopen(f"http://{H1}:{LISTEN}/version", timeout=5) as r:
        return str(json.loads(r.read().decode())["version"])


def state(lab: Lab) -> dict[str, object]:
    return dict(json.loads(lab.ssh("h1", f"cat /srv/{APP}/state.json").stdout))


def live(lab: Lab) -> tuple[str, str]:
    s = state(lab)["live"]
    assert isinstance(s, dict)
    return str(s["color"]), str(s["release"])


def heartbeat(lab: Lab, instance: int) -> dict[str, str]:
    text = lab.ssh("h1", f"cat {DATA}/heartbeat-worker-{instance}", check=False).stdout
    return dict(w.split("=", 1) for w in text.split() if "=" in w)


def until(what: Callable[[], bool], seconds: float = 30) -> bool:
    """Polls what the host does by itself (a worker's next heartbeat, a timer's run)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if what():
            return True
        time.sleep(0.3)
    return what()


def active(lab: Lab, unit: str) -> str:
    return lab.ssh("h1", f"systemctl is-active '{unit}'", check=False).stdout.strip()


def nightly_releases(lab: Lab) -> list[str]:
    text = lab.ssh("h1", f"cat {DATA}/nightly.log", check=False).stdout
    return [dict(w.split("=", 1) for w in ln.split() if "=" in w).get("release", "")
            for ln in text.splitlines()]


def mailer_log(lab: Lab) -> list[tuple[str, str]]:
    text = lab.ssh("h1", f"cat {DATA}/mailer.log", check=False).stdout
    return [(ln.split()[0], ln.split()[1].removeprefix("release=")) for ln in text.splitlines()]


def one_mailer_at_a_time(log: list[tuple[str, str]]) -> bool:
    """overlap = false: every start follows the stop of the one before."""
    return all(a[0] != b[0] for a, b in itertools.pairwise(log))


def test_workers_and_timer_switch_with_the_release(run_cli: Run, project: Project,
                                                   lab: Lab) -> None:
    dry = run_cli("deploy", "lab", "--dry-run", "--skip-checks", cwd=project.root)
    assert dry.code == 0, dry.out + dry.err
    assert "process worker: 2 instance(s) on blue, gated before the switch (live 3s " \
           "without a restart)" in dry.out, dry.out
    assert "process nightly: timer (*:*:0/5) on blue from the switch" in dry.out
    r = run_cli("deploy", "lab", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert "3 worker instance(s) live on" in r.out + r.err
    color1, rel1 = live(lab)
    files = lab.ssh("h1", f"ls /srv/{APP}/releases/{rel1}").stdout.split()
    assert {"procapp", "worker", "mailer", "nightly"} <= set(files)  # one release
    for i in (1, 2):
        assert until(lambda i=i: heartbeat(lab, i).get("release") == rel1)  # type: ignore[misc]
    assert heartbeat(lab, 1)["queue"] == "redis://queue:6379/0"  # the process's env
    assert heartbeat(lab, 1)["version"] == "v1.0.0"  # stamped like the web binary

    project.release("v1.1.0")
    with Load(f"http://{H1}:{LISTEN}/api/items") as load:
        r = run_cli("deploy", "lab", "--skip-checks", cwd=project.root)
        assert r.code == 0, r.out + r.err
    assert load.result.failed == 0, load.result.text
    color2, rel2 = live(lab)
    assert color2 != color1
    assert rel2.startswith("v1.1.0-")
    for i in (1, 2):
        assert until(lambda i=i: heartbeat(lab, i).get("release") == rel2)  # type: ignore[misc]
        assert active(lab, f"{APP}.worker-{color2}@{i}.service") == "active"
        # the old release's worker stopped after the switch (overlap = true)
        assert active(lab, f"{APP}.worker-{color1}@{i}.service") == "inactive"
    assert active(lab, f"{APP}.nightly-{color2}.timer") == "active"
    assert active(lab, f"{APP}.nightly-{color1}.timer") == "inactive"
    assert active(lab, f"{APP}.mailer-{color2}@1.service") == "active"
    assert active(lab, f"{APP}.mailer-{color1}@1.service") == "inactive"
    # the singleton: v1's stopped before v2's started
    assert mailer_log(lab) == [("start", rel1), ("stop", rel1), ("start", rel2)]
    # the timer runs the new release's job (every 5 s)
    assert until(lambda: rel2 in nightly_releases(lab), 40), nightly_releases(lab)
    enabled = lab.ssh("h1", f"systemctl is-enabled '{APP}.worker-{color2}@1.service' "
                            f"'{APP}.nightly-{color2}.timer'", check=False).stdout.split()
    assert enabled == ["enabled", "enabled"]  # boot starts the live release's processes

    st = run_cli("status", "lab", cwd=project.root)
    assert st.code == 0, st.out + st.err
    assert f"process {APP}.worker-{color2}@1.service: active/running" in st.out, st.out
    assert f"process {APP}.worker-{color2}@2.service: active/running" in st.out, st.out
    # a timer is "running" for the moment its job runs (every 5 s here), "waiting" otherwise
    assert re.search(rf"process {APP}\.nightly-{color2}\.timer: active/(waiting|running)\b",
                     st.out), st.out


def test_a_crashing_worker_aborts_with_nothing_switched(run_cli: Run, project: Project,
                                                       lab: Lab) -> None:
    color, rel = live(lab)
    pid = heartbeat(lab, 1)["pid"]
    project.release("v1.2.0-crash")
    with Load(f"http://{H1}:{LISTEN}/api/items") as load:
        r = run_cli("deploy", "lab", "--skip-checks", cwd=project.root)
    assert r.code == 1, r.out + r.err
    said = r.out + r.err
    assert "worker gate failed" in said, said
    assert "cannot reach the queue" in said  # the worker's log tail
    assert load.result.failed == 0, load.result.text
    assert served() == "v1.1.0"
    assert live(lab) == (color, rel)
    # the old worker never stopped; the new one is gone
    assert heartbeat(lab, 1)["pid"] == pid
    assert until(lambda: heartbeat(lab, 1).get("release") == rel)
    assert active(lab, f"{APP}.worker-{color}@1.service") == "active"
    other = "green" if color == "blue" else "blue"
    assert active(lab, f"{APP}.worker-{other}@1.service") in ("inactive", "failed")
    assert active(lab, f"{APP}.nightly-{color}.timer") == "active"
    # the singleton stopped for the new one came back, never two at once
    assert active(lab, f"{APP}.mailer-{color}@1.service") == "active"
    log = mailer_log(lab)
    assert log[-1] == ("start", rel)
    assert one_mailer_at_a_time(log), log


def test_rollback_brings_back_the_old_worker(run_cli: Run, project: Project,
                                             lab: Lab) -> None:
    color, _ = live(lab)
    previous = state(lab)["previous"]
    assert isinstance(previous, dict)
    with Load(f"http://{H1}:{LISTEN}/api/items") as load:
        back = run_cli("rollback", "lab", cwd=project.root)
        assert back.code == 0, back.out + back.err
    assert load.result.failed == 0, load.result.text
    assert served() == "v1.0.0"
    color0, rel0 = live(lab)
    assert rel0 == previous["release"]
    assert color0 != color
    for i in (1, 2):
        assert until(lambda i=i: heartbeat(lab, i).get("release") == rel0)  # type: ignore[misc]
        assert active(lab, f"{APP}.worker-{color}@{i}.service") == "inactive"
    assert heartbeat(lab, 1)["version"] == "v1.0.0"
    assert active(lab, f"{APP}.nightly-{color0}.timer") == "active"
    assert active(lab, f"{APP}.nightly-{color}.timer") == "inactive"
    log = mailer_log(lab)
    assert log[-1] == ("start", rel0)
    assert one_mailer_at_a_time(log), log


def test_remove_takes_the_processes_away(run_cli: Run, project: Project, lab: Lab) -> None:
    color, _ = live(lab)
    pid = heartbeat(lab, 1)["pid"]
    r = run_cli("remove", "lab", "--yes", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert f"{APP}.worker-{color}@1.service" in r.out + r.err  # named in the plan
    assert lab.ssh("h1", f"kill -0 {pid}", check=False).returncode != 0  # the worker is gone
    left = lab.ssh("h1", f"ls -1 /etc/systemd/system /etc/systemd/system/*.wants | "
                         f"grep -F '{APP}.'", check=False).stdout
    assert left == ""
    for unit in (f"{APP}.worker-{color}@1.service", f"{APP}.nightly-{color}.timer"):
        assert active(lab, unit) == "inactive"
