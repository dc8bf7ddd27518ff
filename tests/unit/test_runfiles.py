"""run.args, run.config_files and run.data_dirs as data: the argv each service manager is
given, what a color's start does on the host, and the refusals at validation."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from goship.config import parse
from goship.deploy.layout import Paths
from goship.deploy.runfiles import (
    expand,
    plan_files,
    supervisord_command,
    systemd_exec,
)
from goship.errors import ConfigErrors

HOSTILE = ["plain", "two words", 'a "quoted" one', "it's", "$HOME", "${X}", "100%", "%i",
           "back\\slash", ";", "", "ünïcode", "a;b", "--flag=x y", "a ;b", "c #d", "tab\t;x",
           "#"]


def config(**run: Any) -> Any:
    return parse({"app": {"name": "shop"}, "run": run,
                  "build": {"files": ["conf/app.ini", "config.yaml"]},
                  "env": {"p": {"local": True}}}).env("p").config


def systemd_words(line: str) -> list[str]:
    """How systemd splits ExecStart (systemd.syntax): shell-like quoting, then %% and $$
    are literal % and $ (specifiers and variables aside)."""
    return [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(line)]


def test_systemd_argv_survives_hostile_values() -> None:
    line = systemd_exec("/srv/shop/blue/shop", HOSTILE, color="blue", data="/srv/shop/d")
    assert systemd_words(line) == ["/srv/shop/blue/shop", *HOSTILE]


def test_systemd_placeholders() -> None:
    line = systemd_exec("/srv/shop/blue/shop",
                        ["server", "--addr", ":{port}", "--color={color}",
                         "--release={release}", "--data", "{data}/x"],
                        color="green", data="/srv/shop/shared/data")
    assert line == ("/srv/shop/blue/shop server --addr :%i --color=green "
                    "--release=${GOSHIP_RELEASE} --data /srv/shop/shared/data/x")


def test_a_literal_percent_next_to_a_placeholder_stays_literal() -> None:
    line = systemd_exec("/b", ["{port}%"], color="blue", data="/d")
    assert line == "/b %i%%"


def test_supervisord_command_survives_hostile_values() -> None:
    cmd = supervisord_command(["/run/env.blue.sh", "/srv/shop/blue/shop"], HOSTILE,
                              port=8080, color="blue", release="v1", data="/d")
    # supervisord %-expands command= first, then splits it like a shell.
    assert shlex.split(cmd % {}) == ["/run/env.blue.sh", "/srv/shop/blue/shop", *HOSTILE]


def test_supervisord_command_hides_ini_comment_marks() -> None:
    # supervisord's ini reader ends a value at whitespace + ";" or "#", quotes or not.
    cmd = supervisord_command(["/e"], ["a ;b", "c\t#d"], port=1, color="b", release="r",
                              data="/d")
    assert " ;" not in cmd
    assert "\t#" not in cmd
    assert shlex.split(cmd % {}) == ["/e", "a ;b", "c\t#d"]


def test_supervisord_placeholders() -> None:
    cmd = supervisord_command(["/e", "/b"], ["--port", "{port}", "{release}-{color}"],
                              port=8181, color="green", release="v2", data="/d")
    assert shlex.split(cmd % {}) == ["/e", "/b", "--port", "8181", "v2-green"]


def test_expand_leaves_other_braces() -> None:
    text = 'server:\n  port: {port}\njson: {"a": 1}\nkeep: {PORT}\n'
    assert expand(text, {"port": "9101"}) == \
        'server:\n  port: 9101\njson: {"a": 1}\nkeep: {PORT}\n'


def test_plan_files() -> None:
    c = config(data_dirs=["data", "static/uploads"], config_files=["conf/app.ini"])
    ops = plan_files(c, Paths("/srv", "shop"), "green", "v2", [8180, 8181])
    assert ops.data == [("/srv/shop/releases/v2/data", "/srv/shop/shared/data/data"),
                        ("/srv/shop/releases/v2/static/uploads",
                         "/srv/shop/shared/data/static/uploads")]
    assert ops.farms == [(8180, "/srv/shop/colors/green-8180"),
                         (8181, "/srv/shop/colors/green-8181")]
    assert ops.values[8181] == {"port": "8181", "color": "green", "release": "v2",
                                "data": "/srv/shop/shared/data"}


def test_nothing_to_do_without_the_keys() -> None:
    ops = plan_files(config(), Paths("/srv", "shop"), "blue", "v1", [8080])
    assert (ops.data, ops.farms) == ([], [])


@pytest.mark.parametrize(("run", "says"), [
    ({"args": ["--addr", ":{prot}"]}, "unknown placeholder {prot}"),
    ({"args": ["a\nb"]}, "one line"),
    ({"data_dirs": ["../escape"]}, "run.data_dirs"),
    ({"data_dirs": ["."]}, "a directory inside the release"),
    ({"config_files": ["conf/other.ini"]}, "conf/other.ini is not shipped"),
    ({"config_files": ["config.yaml"], "data_dirs": ["."]}, "run.data_dirs"),
])
def test_refused_at_validation(run: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigErrors) as e:
        config(**run)
    assert says in e.value.line()
