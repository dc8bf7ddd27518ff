"""run.args, run.data_dirs and run.config_files under a real supervisord (local, no lab):
the program section goship renders starts the binary with exactly the argv run.args says,
hostile values included, in a working directory where each data dir is the shared one and
each instance finds its own rendered config file at the path the release ships it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from goship.config import parse
from goship.deploy.layout import Paths
from goship.deploy.runfiles import apply_files, plan_files
from goship.render import kinds
from goship.transport.local import LocalTransport

# Everything a shell, an ini reader or supervisord's %-expansion would eat.
HOSTILE = ["two words", "a ;b", "c #d", "it's ;x", "100%", "%(ENV_HOME)s", "$HOME",
           "back\\slash", "", "tab\t;x", ";", "#", '"dq"', "`id`", "--flag={color}"]

# Prints its argv, one per line, into data/argv.txt relative to its working directory.
ARGV_PRINTER = """#!/bin/sh
for a in "$@"; do printf '%s\\n' "$a"; done > data/argv.txt.tmp
mv data/argv.txt.tmp data/argv.txt
exec sleep 300
"""


def supervisord() -> str:
    exe = shutil.which("supervisord") or str(Path(sys.executable).parent / "supervisord")
    if not Path(exe).exists():
        pytest.fail("supervisord is not installed (it comes with goship's dependencies)")
    return exe


def config(**run: Any) -> Any:
    return parse({"app": {"name": "shop"}, "run": run,
                  "build": {"files": ["conf/app.ini"]},
                  "env": {"p": {"local": True}}}).env("p").config


def wait_for(path: Path) -> str:
    for _ in range(200):
        if path.exists():
            return path.read_text()
        time.sleep(0.05)
    pytest.fail(f"{path} never appeared")


def release_of(tmp_path: Path, script: str) -> tuple[Paths, Path]:
    paths = Paths(str(tmp_path), "shop")
    release = Path(paths.release("v1"))
    (release / "data").mkdir(parents=True)
    (release / "data" / "seed.txt").write_text("shipped\n")
    (release / "conf").mkdir()
    (release / "conf" / "app.ini").write_text("[server]\nport = {port}\ncolor = {color}\n")
    binary = release / "shop"
    binary.write_text(script)
    binary.chmod(0o755)
    os.symlink(release, paths.color_link("blue"))
    run = Path(paths.run_dir)
    run.mkdir()
    (run / "env.blue.sh").write_text(kinds.env_script({}))
    (run / "env.blue.sh").chmod(0o700)
    return paths, release


def start_supervisord(tmp_path: Path, programs: str) -> subprocess.Popen[bytes]:
    conf = tmp_path / "supervisord.conf"
    conf.write_text(
        f"[supervisord]\npidfile={tmp_path}/sd.pid\nlogfile={tmp_path}/sd.log\n"
        f"[unix_http_server]\nfile={tmp_path}/s.sock\n"
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
        + programs)
    return subprocess.Popen([supervisord(), "-n", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_supervisord_starts_the_argv_run_args_says(tmp_path: Path) -> None:
    c = config(args=HOSTILE, data_dirs=["data"])
    paths, release = release_of(tmp_path, ARGV_PRINTER)
    apply_files(LocalTransport(), plan_files(c, paths, "blue", "v1", [8080]), owner=None)

    programs = kinds.supervisord_programs(c, paths, live="blue", user=None,
                                          log_dir=str(tmp_path), releases={"blue": "v1"})
    proc = start_supervisord(tmp_path, programs["programs/shop-blue.conf"])
    try:
        shared = Path(paths.shared) / "data" / "data"
        argv = wait_for(shared / "argv.txt").split("\n")[:-1]
        # The argv arrived whole: no word split, cut at a comment mark or %-expanded.
        assert argv == [*HOSTILE[:-1], "--flag=blue"]
        # The data dir the service wrote through is the shared one, seeded by the release.
        assert (release / "data").is_symlink()
        assert (shared / "seed.txt").read_text() == "shipped\n"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# Copies the config file it opens (relative to its working directory) into the shared data.
INI_READER = """#!/bin/sh
cp conf/app.ini "data/$PORT.ini.tmp" && mv "data/$PORT.ini.tmp" "data/$PORT.ini"
exec sleep 300
"""


def test_each_instance_reads_its_own_config_file(tmp_path: Path) -> None:
    c = config(config_files=["conf/app.ini"], data_dirs=["data"], instances=2)
    paths, release = release_of(tmp_path, INI_READER)
    apply_files(LocalTransport(), plan_files(c, paths, "blue", "v1", [8080, 8081]),
                owner=None)
    programs = kinds.supervisord_programs(c, paths, live="blue", user=None,
                                          log_dir=str(tmp_path), releases={"blue": "v1"})
    proc = start_supervisord(tmp_path, programs["programs/shop-blue.conf"])
    try:
        shared = Path(paths.shared) / "data" / "data"
        # Same relative path, its own port; the release keeps the placeholders.
        assert wait_for(shared / "8080.ini") == "[server]\nport = 8080\ncolor = blue\n"
        assert wait_for(shared / "8081.ini") == "[server]\nport = 8081\ncolor = blue\n"
        assert "{port}" in (release / "conf" / "app.ini").read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
