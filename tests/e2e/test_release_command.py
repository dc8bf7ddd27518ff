"""deploy.release_command on lab hosts (real systemd, sshd, nginx), under a steady load:
it runs once per deploy, on one host, as the service user, from the new release's
directory, with the release's environment, while the old release still serves; never
again for a rollback; a failing one aborts with its output's tail, nothing switched on any
host, the lock released, the journal saying so, and 0 failed requests."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import CliResult
from tests.e2e.conftest import Lab
from tests.e2e.helpers import Project
from tests.e2e.load import Load

pytestmark = [pytest.mark.lab, pytest.mark.slow]
Run = Callable[..., CliResult]
H1, H2 = "10.78.0.11", "10.78.0.12"
APP, LISTEN = "migrapp", 8131
LOG = f"/srv/{APP}/shared/data/release-command.log"

# One line per run: who, where, what the environment says, what nginx served meanwhile.
MARK = (f'echo "user=$(id -un) dir=$(pwd) mark=$MARK_VALUE token=$API_TOKEN '
        f'release=$GOSHIP_RELEASE serving=$(curl -s http://127.0.0.1:{LISTEN}/version)" '
        f'>> "$HOME/release-command.log"')
FAIL = "echo applying 0042_add_index; echo 'ERROR: relation \"items\" already exists' >&2; exit 3"

TOML = f"""
[app]
name = "{APP}"

[app.stamp]
"main.version" = "{{version}}"

[build]
assets = ["templates", "static"]

[run]
env_file = ".env.lab"
base_port = 9300
drain_timeout = 5.0

[run.env]
MARK_VALUE = "from-run-env"

[run.health]
interval = 0.2
deadline = 15.0

[proxy]
listen = {LISTEN}

[deploy]
release_command = '''{{command}}'''
release_host = "h2"

[env.lab]
lab = 2
"""


def toml(command: str) -> str:
    return TOML.replace("{command}", command)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[Project]:
    p = Project(tmp_path_factory.mktemp("migrate") / APP, toml(MARK))
    (p.root / ".env.lab").write_text("API_TOKEN=tok-s3cr3t-4242\n")
    (p.root / ".gitignore").write_text("dist/\n.env.lab\n")
    p.release("v1.0.0")
    yield p
    lab.remove_app(APP, ["h1", "h2"], f"goship-{APP}-standby-*")


def served(addr: str) -> str:
    with urllib.request.urlopen(f"http://{addr}:{LISTEN}/version", timeout=5) as r:
        return str(json.loads(r.read().decode())["version"])


def runs(lab: Lab, host: str) -> list[str]:
    res = lab.ssh(host, f"cat {LOG}", check=False)
    return res.stdout.splitlines() if res.returncode == 0 else []


def state(lab: Lab, host: str) -> dict[str, object]:
    return dict(json.loads(lab.ssh(host, f"cat /srv/{APP}/state.json").stdout))


def test_runs_once_on_its_host_before_the_switch_never_on_rollback(
        run_cli: Run, project: Project, lab: Lab) -> None:
    dry = run_cli("deploy", "lab", "--dry-run", "--skip-checks", cwd=project.root)
    assert dry.code == 0, dry.out + dry.err
    assert "release command on h2, once, before any host starts v1.0.0-" in dry.out
    r = run_cli("deploy", "lab", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert runs(lab, "h1") == []  # one host only
    assert len(runs(lab, "h2")) == 1
    project.release("v1.1.0")
    with Load(f"http://{H1}:{LISTEN}/api/items") as load:
        r = run_cli("deploy", "lab", "--skip-checks", cwd=project.root)
        assert r.code == 0, r.out + r.err
        back = run_cli("rollback", "lab", cwd=project.root)
        assert back.code == 0, back.out + back.err
    assert load.result.failed == 0, load.result.text
    assert "tok-s3cr3t-4242" not in r.out + r.err  # the environment is never printed
    new = str(state(lab, "h2")["previous"]["release"])  # type: ignore[index]
    assert new.startswith("v1.1.0-")
    lines = runs(lab, "h2")
    assert len(lines) == 2, lines  # once per deploy, not again for the rollback
    assert runs(lab, "h1") == []
    head, _, serving = lines[1].partition(" serving=")
    assert head == (f"user={APP} dir=/srv/{APP}/releases/{new} mark=from-run-env "
                    f"token=tok-s3cr3t-4242 release={new}")
    assert '"version":"v1.0.0"' in serving  # nginx still served the old release meanwhile
    journal = [json.loads(x) for x in lab.ssh("h2", f"cat /srv/{APP}/journal.jsonl"
                                               ).stdout.splitlines()]
    ran = [j for j in journal if j["action"] == "release command"]
    assert [(j["outcome"], j["release"][:6]) for j in ran] == [("ok", "v1.0.0"),
                                                               ("ok", "v1.1.0")]


def test_a_failing_release_command_aborts_with_nothing_switched(
        run_cli: Run, project: Project, lab: Lab) -> None:
    r = run_cli("deploy", "lab", "--skip-checks", cwd=project.root)  # v1.1.0 again, live
    assert r.code == 0, r.out + r.err
    before = {h: state(lab, h) for h in ("h1", "h2")}
    project.toml = toml(FAIL)
    project.release("v1.2.0")
    with Load(f"http://{H1}:{LISTEN}/api/items") as load:
        r = run_cli("deploy", "lab", "--skip-checks", cwd=project.root)
    assert r.code == 1, r.out + r.err
    said = r.out + r.err
    assert "h2: release command failed: `" in said
    assert "exited 3; output:" in said
    assert "applying 0042_add_index" in said  # the output's tail
    assert 'ERROR: relation "items" already exists' in said
    assert load.result.failed == 0, load.result.text
    for addr, h in ((H1, "h1"), (H2, "h2")):
        assert served(addr) == "v1.1.0"  # nothing switched, anywhere
        after = state(lab, h)
        assert after["live"] == before[h]["live"]
        # v1.2.0 was uploaded (the command ran from it on h2) but never started: no color
        # points at it, and the live color and the warm standby still run
        assert "v1.2.0-" in lab.ssh(h, f"ls /srv/{APP}/releases").stdout
        for color in ("blue", "green"):
            target = lab.ssh(h, f"readlink /srv/{APP}/{color}", check=False).stdout
            assert "v1.2.0" not in target
        units = lab.ssh(h, f"systemctl list-units --no-legend --state=active '{APP}-*'"
                        ).stdout
        standby = before[h]["standby"]
        assert isinstance(standby, dict)
        for color in (before[h]["live"]["color"], standby["color"]):  # type: ignore[index]
            port = after["ports"][color][0]  # type: ignore[index]
            assert f"{APP}-{color}@{port}.service" in units, units
    # the lock is released, the journal records the failure
    assert lab.ssh("h2", f"test -e /srv/{APP}/.lock/owner", check=False).returncode != 0
    last = [json.loads(x) for x in lab.ssh("h2", f"tail -n 3 /srv/{APP}/journal.jsonl"
                                            ).stdout.splitlines()]
    failed = [j for j in last if j.get("outcome") == "failed"]
    assert any(j["action"] == "release command" and "exited 3" in j["error"] for j in failed)
    assert any(j["action"] == "deploy" and j["step"] == "release command" for j in failed)
    last = json.loads(lab.ssh("h1", f"tail -n 1 /srv/{APP}/journal.jsonl").stdout)
    assert (last["action"], last["outcome"], last["step"]) == ("deploy", "failed",
                                                               "release command")


def test_rolling_runs_it_once_before_the_first_batch(run_cli: Run, project: Project,
                                                     lab: Lab) -> None:
    # h2 runs it and asks h1 (the first batch) what it serves meanwhile
    project.toml = toml(MARK.replace("127.0.0.1", H1)).replace(
        'release_host = "h2"', 'release_host = "h2"\nstrategy = "rolling"')
    project.release("v1.3.0")
    with Load(f"http://{H1}:{LISTEN}/api/items") as load:
        r = run_cli("deploy", "lab", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert load.result.failed == 0, load.result.text
    assert served(H1) == served(H2) == "v1.3.0"
    mine = [x for x in runs(lab, "h2") if "release=v1.3.0-" in x]
    assert len(mine) == 1, mine
    assert '"version":"v1.1.0"' in mine[0].partition(" serving=")[2]
    assert runs(lab, "h1") == []


def test_canary_start_runs_it_abort_does_not(run_cli: Run, project: Project,
                                             lab: Lab) -> None:
    project.toml = toml(MARK)
    project.release("v1.4.0")
    r = run_cli("canary", "start", "lab", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert "h2: release command done" in r.out + r.err
    aborted = run_cli("canary", "abort", "lab", cwd=project.root)
    assert aborted.code == 0, aborted.out + aborted.err
    mine = [x for x in runs(lab, "h2") if "release=v1.4.0-" in x]
    assert len(mine) == 1, mine  # at the start, not again for the abort
    assert served(H1) == served(H2) == "v1.3.0"
