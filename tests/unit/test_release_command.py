"""deploy.release_command as data: where the plan runs it (and when it does not), how the
config refuses a host that is not the environment's, and the command run for real by this
machine's shell (quoting, environment, directory, timeout, the output's tail)."""

from __future__ import annotations

import json
import shlex
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from goship.config.load import parse
from goship.config.model import Config, Target_
from goship.deploy import release_command as rc
from goship.deploy.layout import Paths
from goship.deploy.plan import Artifact, HostView, plan_fleet
from goship.errors import ApplyError, ConfigErrors
from goship.transport import LocalTransport
from goship.transport.base import Result
from goship.transport.fake import FakeTransport
from tests.conftest import CliResult

BASE = '[app]\nname = "shop"\n'


def config_of(extra: str = "") -> Config:
    return Config.model_validate(tomllib.loads(BASE + extra))


def view(name: str, live: str | None = "blue") -> HostView:
    return HostView(name=name, manager="systemd", lua=True, live_color=live,
                    live_release="v1" if live else None, state={}, releases={},
                    listeners={}, running={"blue": [], "green": []}, env_kept=["v1"],
                    now=1000.0)


MIGRATE = '[deploy]\nrelease_command = "./migrate up"\n'

# (config, action, release_host as resolved, hosts reached) -> host it runs on, or None
PLANS: list[tuple[str, str, str | None, list[str], str | None]] = [
    (MIGRATE, "deploy", None, ["h1", "h2"], "h1"),  # default: the first host
    (MIGRATE, "deploy", "h2", ["h1", "h2"], "h2"),
    (MIGRATE, "canary", None, ["h1", "h2"], "h1"),  # the canary's code meets its schema
    (MIGRATE, "rollback", None, ["h1", "h2"], None),  # never again for a rollback
    (MIGRATE, "promote", None, ["h1", "h2"], None),  # nor a promotion
    ("", "deploy", None, ["h1", "h2"], None),  # no command, no step
    (MIGRATE + 'strategy = "rolling"\n', "deploy", "h2", ["h1", "h2"], "h2"),
]


@pytest.mark.parametrize(("extra", "action", "wanted", "hosts", "where"), PLANS)
def test_where_the_plan_runs_it(extra: str, action: str, wanted: str | None,
                                hosts: list[str], where: str | None) -> None:
    config = config_of(extra)
    fleet = plan_fleet(config, "prod", [view(h) for h in hosts], action,  # type: ignore[arg-type]
                       dict.fromkeys(hosts, "v2"), dict.fromkeys(hosts, Artifact("v2", "ab")),
                       release_host=wanted)
    step = fleet.release_command
    if where is None:
        assert step is None
        assert not any("release command" in line for line in fleet.lines())
        return
    assert step is not None
    assert (step.host, step.command, step.timeout, step.user) == \
        (where, "./migrate up", 300.0, "shop")
    lines = fleet.lines()
    assert lines[1] == (f"release command on {where}, once, before any host starts v2: "
                        f"./migrate up")
    assert "as shop, in releases/v2" in lines[2]
    # --dry-run --json carries it too
    got = json.loads(json.dumps(fleet.as_dict()))["release_command"]
    assert got == {"host": where, "command": "./migrate up", "timeout": 300.0,
                   "user": "shop", "release": "v2"}


def test_a_release_host_left_out_as_unreachable_stops_the_plan() -> None:
    config = config_of(MIGRATE + 'on_unreachable = "skip"\n')
    with pytest.raises(ApplyError, match=r"deploy\.release_host h3 was not reached"):
        plan_fleet(config, "prod", [view("h1")], "deploy", {"h1": "v2"},
                   {"h1": Artifact("v2", "ab")}, release_host="h3")


def test_local_mode_runs_it_as_the_deploying_user() -> None:
    fleet = plan_fleet(config_of(MIGRATE), "local", [view("local")], "deploy",
                       {"local": "v2"}, {"local": Artifact("v2", "ab")}, local=True)
    assert fleet.release_command is not None
    assert fleet.release_command.user is None
    assert "as the deploying user" in fleet.lines()[2]


# ---- which host deploy.release_host names -----------------------------------------------
RESOLVE: list[tuple[dict[str, Any], str | None, str | None]] = [
    ({"lab": 3}, None, "h1"),
    ({"lab": 3}, "h3", "h3"),
    ({"lab": 3}, "h4", None),
    ({"local": True}, None, "local"),
    ({"hosts": ["deploy@app1.example.com:2222", "app2"]}, None, "deploy@app1.example.com"),
    ({"hosts": ["deploy@app1.example.com:2222", "app2"]}, "app2", "app2"),
    # as written, as goship names it, or by its address alone
    ({"hosts": ["deploy@app1.example.com:2222", "app2"]}, "deploy@app1.example.com:2222",
     "deploy@app1.example.com"),
    ({"hosts": ["deploy@app1.example.com:2222", "app2"]}, "app1.example.com",
     "deploy@app1.example.com"),
    ({"hosts": ["app2"]}, "app3", None),
]


@pytest.mark.parametrize(("target", "wanted", "name"), RESOLVE)
def test_resolve(target: dict[str, Any], wanted: str | None, name: str | None) -> None:
    assert rc.resolve(Target_.model_validate(target), wanted) == name


# ---- validation: one line naming the file, the key and the fix ---------------------------
def config_error(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigErrors) as e:
        parse({"app": {"name": "shop"}, **raw}, file="goship.toml")
    return e.value.line()


def test_a_release_host_not_of_the_environment_is_refused() -> None:
    line = config_error({"deploy": {"release_host": "h3", "release_command": "true"},
                         "env": {"lab": {"lab": 2}}})
    assert line == ("goship.toml: deploy.release_host: 'h3' is not a host of env.lab; name "
                    "one of its hosts (h1, h2) or drop the key (default: the first host)")
    line = config_error({"env": {"prod": {"hosts": ["a", "b"],
                                          "deploy": {"release_host": "c"}}}})
    assert line.startswith("goship.toml: env.prod.deploy.release_host: 'c' is not a host of "
                           "env.prod; name one of its hosts (a, b)")


@pytest.mark.parametrize(("key", "value", "says"), [
    ("release_command", "./migrate up\nrm -rf /", "one command on one line"),
    ("release_command", "", "expected a shell command"),
    ("release_host", "h1; rm -rf /", "expected a host of the environment"),
    ("release_host", "../h1", "expected a host of the environment"),
    ("release_command_timeout", 0, "greater than 0"),
])
def test_hostile_or_empty_values_are_refused(key: str, value: Any, says: str) -> None:
    line = config_error({"deploy": {key: value}, "env": {"lab": {"lab": 2}}})
    assert line.startswith(f"goship.toml: deploy.{key}: "), line
    assert says in line
    assert "\n" not in line


def test_the_cli_refuses_before_touching_any_host(run_cli: Any, tmp_path: Path) -> None:
    (tmp_path / "goship.toml").write_text(
        BASE + '[deploy]\nrelease_command = "./migrate up"\nrelease_host = "h9"\n'
        '[env.lab]\nlab = 2\n')
    r: CliResult = run_cli("deploy", "lab", "--dry-run", cwd=tmp_path)
    assert r.code == 2
    assert "deploy.release_host: 'h9' is not a host of env.lab" in r.err
    assert len(r.err.strip().splitlines()) == 1


# ---- the command as sent to a host ---------------------------------------------------------
def host_of(t: Any, base: Path | str = "/srv") -> Any:
    return SimpleNamespace(t=t, paths=Paths(str(base), "shop"), name=t.name)


def test_the_command_line_is_one_quoted_argument_and_the_environment_goes_by_stdin() -> None:
    hostile = "./migrate up; echo $(id) `whoami` 'x' \"y\" && rm -rf / # | > <"
    t = FakeTransport("h1", {"sh -c": Result(0, "migrated\n", "")})
    step = rc.ReleaseStep("h1", hostile, 300.0, "shop", "v2")
    rc.run(host_of(t), step, {"DB_PASSWORD": "s3cr3t-value", "GIN_MODE": "release"})
    cmd = t.calls[-1]
    argv = shlex.split(cmd.shell())
    assert argv[-2] == hostile  # exactly the user's line, one argument for `sh -c`
    assert argv[-6:-2] == ["/srv/shop/releases/v2", "300", "shop", "/srv/shop/shared/data"]
    assert "s3cr3t-value" not in cmd.shell()  # never on a command line
    assert cmd.stdin is not None
    assert b"export DB_PASSWORD=s3cr3t-value" in cmd.stdin


def test_a_failure_says_its_exit_status_and_the_tail_with_secrets_masked() -> None:
    out = "".join(f"line {i}\n" for i in range(40)) + "dsn postgres://u:s3cr3t-value@db\n"
    t = FakeTransport("h1", {"sh -c": Result(3, out, "")})
    step = rc.ReleaseStep("h1", "./migrate up", 300.0, "shop", "v2")
    with pytest.raises(ApplyError) as e:
        rc.run(host_of(t), step, {"DB_PASSWORD": "s3cr3t-value"})
    msg = e.value.message
    assert msg.startswith("`./migrate up` exited 3; output:\n")
    assert "line 21" in msg
    assert "line 20\n" not in msg
    assert "s3cr3t-value" not in msg
    assert "postgres://u:******@db" in msg


@pytest.mark.parametrize(("code", "says"), [
    (124, "timed out after 300s"), (137, "timed out after 300s"),
    (127, "exited 127 (command not found)"), (1, "exited 1"),
])
def test_failure_words(code: int, says: str) -> None:
    assert says in rc.failure(code, 300.0)


# ---- the script itself, run by this machine's sh (as the user running the tests) ---------
@pytest.fixture
def release_dir(tmp_path: Path) -> Path:
    d = tmp_path / "shop" / "releases" / "v2"
    d.mkdir(parents=True)
    (tmp_path / "shop" / "shared" / "data").mkdir(parents=True)
    (d / "migrate").write_text("#!/bin/sh\necho \"migrating $1 in $(pwd) as $DB_URL\"\n"
                               "echo done > \"$HOME/marker\"\n")
    (d / "migrate").chmod(0o755)
    return d


def local_step(command: str, timeout: float = 30.0) -> rc.ReleaseStep:
    return rc.ReleaseStep("local", command, timeout, None, "v2")


def test_it_runs_from_the_release_directory_with_the_release_environment(
        release_dir: Path, tmp_path: Path) -> None:
    h = host_of(LocalTransport("local"), tmp_path)
    env = {"DB_URL": "sqlite:///it's \"quoted\" $HOME\nand two lines", "GOSHIP_RELEASE": "v2"}
    _, out = rc.run(h, local_step("./migrate up && echo \"release=$GOSHIP_RELEASE\" && "
                                  "echo \"ssh=${SSH_CONNECTION:-none}\""), env)
    assert f"migrating up in {release_dir} as {env['DB_URL']}" in out
    assert "release=v2" in out
    assert "ssh=none" in out  # nothing of the deploying shell's environment
    assert (tmp_path / "shop" / "shared" / "data" / "marker").read_text() == "done\n"


def test_a_failing_command_fails_with_its_status(release_dir: Path, tmp_path: Path) -> None:
    h = host_of(LocalTransport("local"), tmp_path)
    with pytest.raises(ApplyError, match=r"`echo broken >&2; exit 7` exited 7; "
                                         r"output:\nbroken$"):
        rc.run(h, local_step("echo broken >&2; exit 7"), {})


def test_a_command_past_its_timeout_is_killed(release_dir: Path, tmp_path: Path) -> None:
    h = host_of(LocalTransport("local"), tmp_path)
    with pytest.raises(ApplyError, match="timed out after 1s"):
        rc.run(h, local_step("echo started; sleep 30 & wait", timeout=1), {})
