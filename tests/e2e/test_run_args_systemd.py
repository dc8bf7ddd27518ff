"""run.args read by a real systemd (a lab host): the unit goship renders passes the process
exactly the argv run.args says, hostile values and placeholders included. The process's
/proc/PID/cmdline is the proof, `systemd-analyze verify` the second opinion."""

from __future__ import annotations

import base64
import shlex
from typing import Any

import pytest

from goship.config import parse
from goship.deploy.layout import Paths
from goship.render import kinds
from tests.e2e.conftest import Lab

pytestmark = [pytest.mark.lab]
H1 = "10.78.0.11"
APP = "argvtest"

# Specifiers (%i, %n, %%), variables ($X, $$), quotes, backslashes (a trailing one too),
# separators and comment marks. ("${X}" is refused at validation: {X} is no placeholder.)
HOSTILE = ["two words", "%i", "%n", "100%", "%%", "$HOME", "${", "$$", "back\\slash",
           "\\n", 'a "quoted" one', "it's", "", ";", "a;b", "a ;b", "c #d", "x\\",
           "tab\there", "ünïcode", "-x"]
PLACED = ["--addr", ":{port}", "--color={color}", "--release={release}", "{data}/x"]

# The "binary": keeps its argv in /proc while systemd runs it.
SLEEPER = "#!/bin/sh\nsleep 300\n"


def config(**run: Any) -> Any:
    return parse({"app": {"name": APP}, "run": run,
                  "env": {"p": {"hosts": [H1]}}}).env("p").config


def test_systemd_passes_the_argv_run_args_says(lab: Lab) -> None:
    c = config(args=[*HOSTILE, *PLACED])
    paths = Paths("/srv", APP)
    units = kinds.systemd_units(c, paths)
    rel = paths.release("v1")
    setup = [f"mkdir -p {rel} /srv/{APP}/shared/data /etc/sysusers.d",
             f"printf %s {shlex.quote(SLEEPER)} > {rel}/{APP}", f"chmod 755 {rel}/{APP}",
             f"ln -sfn {rel} {paths.color_link('blue')}",
             f"printf 'GOSHIP_RELEASE=v1\\n' > {paths.env_file('blue')}"]
    for name, text in units.items():
        dest = (f"/etc/sysusers.d/{name.split('/', 1)[1]}" if name.startswith("sysusers.d/")
                else f"/etc/systemd/system/{name}")
        setup.append(f"printf %s {shlex.quote(text)} > {dest}")
    setup += ["systemd-sysusers", "systemctl daemon-reload"]
    try:
        lab.ssh("h1", " && ".join(setup))
        verify = lab.ssh("h1", f"systemd-analyze verify {APP}-blue@8080.service", check=False)
        assert "ExecStart" not in verify.stderr, verify.stderr
        lab.ssh("h1", f"systemctl start {APP}-blue@8080")
        pid = lab.ssh("h1", f"systemctl show -p MainPID --value {APP}-blue@8080").stdout.strip()
        raw = lab.ssh("h1", f"base64 -w0 /proc/{pid}/cmdline").stdout
        argv = base64.b64decode(raw).decode().split("\0")[:-1]
        # /bin/sh SCRIPT ARGS...: everything after the script is what run.args said.
        assert argv[1:] == [f"{paths.color_link('blue')}/{APP}", *HOSTILE, "--addr", ":8080",
                            "--color=blue", "--release=v1", f"/srv/{APP}/shared/data/x"]
    finally:
        lab.ssh("h1", f"systemctl stop '{APP}-*'; rm -f /etc/systemd/system/{APP}-*.service "
                    f"/etc/sysusers.d/{APP}.conf; systemctl daemon-reload; rm -rf /srv/{APP}",
                check=False)
