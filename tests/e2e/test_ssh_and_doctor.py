"""The SSH transport and `goship doctor` against real sshd on lab hosts."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from goship.command import Cmd
from goship.errors import Unreachable
from goship.lab import hosts, layout
from goship.transport import SshOptions, SshTransport
from tests.conftest import CliResult
from tests.e2e.conftest import Lab

pytestmark = pytest.mark.lab
Run = Callable[..., CliResult]


def lab_transport(addr: str = "10.78.0.11", user: str = "root", **kw: object) -> SshTransport:
    opts = SshOptions(identity_file=str(layout.key_path()),
                      known_hosts=str(layout.known_hosts_path()), **kw)  # type: ignore[arg-type]
    return SshTransport(f"{user}@{addr}", opts)


def test_run_put_get_over_one_connection(lab: Lab) -> None:
    t = lab_transport()
    try:
        hostile = "/tmp/a b; touch /tmp/pwned; '\"$(id)"
        t.check(Cmd.of("mkdir", "-p", hostile))
        assert t.check(Cmd.of("ls", "-d", hostile)).stdout.strip() == hostile
        assert t.run(Cmd.of("test", "-e", "/tmp/pwned")).code == 1
        t.put("/root/app.env", b"DB_PASSWORD=hunter2\n", mode=0o600)
        assert t.get("/root/app.env") == b"DB_PASSWORD=hunter2\n"
        mode = t.check(Cmd.of("stat", "-c", "%a", "/root/app.env")).stdout.strip()
        assert mode == "600"
        # One master connection carries every command (ControlMaster).
        sockets = [p for p in Path(f"/tmp/goship-{os.getuid()}").iterdir()
                   if stat.S_ISSOCK(p.stat().st_mode)]
        assert sockets
    finally:
        t.close()


def test_non_root_user_works_through_sudo(lab: Lab) -> None:
    pub = Path(str(layout.key_path()) + ".pub").read_text()
    lab.ssh("h2", "id deploy >/dev/null 2>&1 || useradd -m -s /bin/sh deploy; "
                  "mkdir -p ~deploy/.ssh && cat > ~deploy/.ssh/authorized_keys && "
                  "chown -R deploy ~deploy/.ssh && chmod 600 ~deploy/.ssh/authorized_keys && "
                  "echo 'deploy ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/deploy"
            .replace("cat >", f"echo {pub.strip()!r} >"))
    plain = lab_transport("10.78.0.12", "deploy")
    sudo = lab_transport("10.78.0.12", "deploy", sudo=True)
    try:
        assert plain.check(Cmd.of("id", "-u")).stdout.strip() != "0"
        assert sudo.check(Cmd.of("id", "-u")).stdout.strip() == "0"
        sudo.put("/etc/goship-test", b"x", mode=0o640)
        assert lab.ssh("h2", "stat -c '%a %U' /etc/goship-test").stdout.strip() == "640 root"
    finally:
        plain.close()
        sudo.close()


def test_unknown_host_key_is_a_clear_error(lab: Lab, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    t = SshTransport("root@10.78.0.11", SshOptions(identity_file=str(layout.key_path()),
                                                   known_hosts=str(empty)))
    with pytest.raises(Unreachable) as info:
        t.run(Cmd.of("true"))
    assert "cannot connect over ssh: Host key verification failed" in info.value.line()


def project(tmp_path: Path, lab_hosts: int = 2) -> Path:
    path = tmp_path / "goship.toml"
    path.write_text(f'[app]\nname = "shop"\n\n[env.lab]\nlab = {lab_hosts}\n')
    return path


def test_doctor_lab(lab: Lab, run_cli: Run, tmp_path: Path) -> None:
    r = run_cli("--config", str(project(tmp_path)), "doctor", "lab")
    assert r.code == 0, r.out + r.err
    for h in ("h1", "h2"):
        assert f"ok   {h}: init: systemd is PID 1" in r.out
        assert f"ok   {h}: nginx: 1." in r.out
        assert f"ok   {h}: os: linux/" in r.out
    assert "h3" not in r.out  # lab = 2 means h1 and h2


def test_doctor_reports_a_cut_host_and_exits_1(lab: Lab, run_cli: Run, tmp_path: Path) -> None:
    hosts.cut("h2")
    try:
        r = run_cli("--config", str(project(tmp_path)), "doctor", "lab", "--json")
    finally:
        hosts.heal("h2")
    assert r.code == 1
    data = json.loads(r.out)
    assert not data["ok"]
    failed = [c for c in data["checks"] if c["level"] == "fail"]
    assert [(c["where"], c["what"]) for c in failed] == [("h2", "reachable")]
    assert "cannot connect over ssh" in failed[0]["detail"]


def test_lab_env_needs_a_running_lab(lab: Lab, run_cli: Run, tmp_path: Path) -> None:
    r = run_cli("--config", str(project(tmp_path, lab_hosts=5)), "doctor", "lab")
    assert r.code == 2
    assert "lab host(s) h4, h5 not running; run `goship lab up --hosts 5`" in r.err
    assert hosts.status()  # the lab itself is untouched


# ---- connections that outlive a goship command -----------------------------------------
def master_pid(t: SshTransport) -> int | None:
    """The pid of the master connection `t` would use, if one is running."""
    res = subprocess.run([*t.base_argv(), "-O", "check", "--", t.host], capture_output=True,
                         text=True, check=False, timeout=10)
    found = re.search(r"pid=(\d+)", res.stderr)
    return int(found.group(1)) if res.returncode == 0 and found else None


def goship(config: Path, *args: str, keep: bool = True) -> subprocess.CompletedProcess[str]:
    """`keep=False`: no shell kept between commands (GOSHIP_KEEP_SHELLS=0), so each command
    opens its own session over the master."""
    env = {**os.environ, "GOSHIP_KEEP_SHELLS": "1" if keep else "0"}
    return subprocess.run([sys.executable, "-m", "goship", "--config", str(config), *args],
                          capture_output=True, text=True, check=False, timeout=300, env=env)


def shells_on(lab: Lab, host: str) -> set[str]:
    """The pids of the shells goship's sessions run on the host (`sh` under sshd)."""
    out = lab.ssh(host, "for p in $(pgrep -x sh); do "
                        "case $(ps -o args= -p $(ps -o ppid= -p $p)) in "
                        "'sshd: root@notty'*) echo $p;; esac; done").stdout
    return set(out.split())


def test_a_master_outlives_the_command_and_a_dead_one_is_replaced(lab: Lab,
                                                                  tmp_path: Path) -> None:
    config = project(tmp_path)
    h1 = lab_transport()  # the options `lab = N` uses: the same master
    for t in (h1, lab_transport("10.78.0.12")):
        t._retire_master()  # whatever earlier tests left: this test starts the masters
    # Without kept shells: one kept over a retired master would still serve (test below).
    first = goship(config, "doctor", "lab", keep=False)
    assert first.returncode == 0, first.stdout + first.stderr
    pid = master_pid(h1)
    assert pid is not None  # still there after the command ended
    second = goship(config, "doctor", "lab", keep=False)
    assert second.returncode == 0, second.stdout + second.stderr
    assert master_pid(h1) == pid  # the second command went over it (no new handshake)
    os.kill(pid, signal.SIGKILL)  # a dead master: its socket is left behind
    third = goship(config, "doctor", "lab", keep=False)
    assert third.returncode == 0, third.stdout + third.stderr
    assert master_pid(h1) not in (None, pid)


def test_the_next_command_runs_on_the_shell_the_last_one_kept(lab: Lab,
                                                             tmp_path: Path) -> None:
    config = project(tmp_path)
    first = goship(config, "doctor", "lab")
    assert first.returncode == 0, first.stdout + first.stderr
    before = shells_on(lab, "h1")
    assert before  # kept, not ended, after the command
    second = goship(config, "-vv", "doctor", "lab")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "h1: using the shell an earlier goship command kept" in second.stderr
    assert shells_on(lab, "h1") <= before  # no new session on the host
    # A kept shell that dies is dropped, never used: the next command opens a new one.
    lab.ssh("h1", f"kill -9 {' '.join(before)}")
    third = goship(config, "-vv", "doctor", "lab")
    assert third.returncode == 0, third.stdout + third.stderr
    assert "h1: using the shell an earlier goship command kept" not in third.stderr
    assert shells_on(lab, "h1").isdisjoint(before)
    # Turned off: the command takes none and ends its own.
    kept = shells_on(lab, "h1")
    off = goship(config, "-vv", "doctor", "lab", keep=False)
    assert off.returncode == 0, off.stdout + off.stderr
    assert "kept" not in off.stderr
    deadline = time.monotonic() + 10
    while shells_on(lab, "h1") != kept and time.monotonic() < deadline:
        time.sleep(0.2)
    assert shells_on(lab, "h1") == kept


def test_a_master_to_a_cut_host_is_not_trusted(lab: Lab) -> None:
    lab_transport("10.78.0.12").check(Cmd.of("true"))  # a master to h2, left running
    hosts.cut("h2")
    try:
        t = lab_transport("10.78.0.12")
        assert master_pid(t) is not None  # the master does not know yet
        with pytest.raises(Unreachable) as info:
            t.run(Cmd.of("true"))
        assert "cannot connect over ssh" in info.value.line()
    finally:
        hosts.heal("h2")
    after = lab_transport("10.78.0.12")
    assert after.check(Cmd.of("hostname")).stdout.strip() == "lab-h2"


def test_a_rotated_host_key_fails_even_with_a_master_open(lab: Lab) -> None:
    """h3's sshd restarts with new host keys while a master to it is open (the master's
    connection survives an sshd restart): a new goship must not use it."""
    old = lab_transport("10.78.0.13")
    old.check(Cmd.of("true"))
    pid = master_pid(old)
    assert pid is not None
    lab.ssh("h3", "rm -rf /root/hostkeys && mkdir /root/hostkeys && "
                  "cp -a /etc/ssh/ssh_host_* /root/hostkeys/")
    try:
        lab.ssh("h3", "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && "
                      "(systemctl restart ssh || systemctl restart sshd)")
        assert master_pid(old) == pid  # the old connection lives on
        t = lab_transport("10.78.0.13")
        with pytest.raises(Unreachable) as info:
            t.run(Cmd.of("true"))
        assert "Host key verification failed" in info.value.line()
    finally:
        restore = ("cp -a /root/hostkeys/* /etc/ssh/ && "
                   "(systemctl restart ssh || systemctl restart sshd)")
        # h3 now has keys known_hosts does not trust: this once, over a connection that
        # trusts any key, to put the old ones back
        subprocess.run(["ssh", "-i", str(layout.key_path()), "-o", "IdentitiesOnly=yes",
                        "-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no",
                        "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ControlPath=none",
                        "root@10.78.0.13", restore], capture_output=True, check=False,
                       timeout=60)
        old.close()
    assert lab_transport("10.78.0.13").check(Cmd.of("hostname")).stdout.strip() == "lab-h3"
