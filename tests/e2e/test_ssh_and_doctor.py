"""The SSH transport and `goship doctor` against real sshd on lab hosts."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from goship.command import Cmd
from goship.errors import TransportError
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
    with pytest.raises(TransportError) as info:
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
