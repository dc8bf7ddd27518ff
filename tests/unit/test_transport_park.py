"""Shells kept between goship commands (park.py), with a local `sh` standing in for
`ssh host sh`: real processes, real pipes, a real broker on a unix socket."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from goship.command import Cmd
from goship.transport import park
from goship.transport.session import Adopted, Session
from tests.unit.test_transport_session import Stub


@pytest.fixture
def keeping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("GOSHIP_KEEP_SHELLS", "1")
    d = tmp_path / "ctl"
    d.mkdir(mode=0o700)
    yield d
    broker = subprocess.run(["pgrep", "-f", f"park.py {d}"], capture_output=True, text=True,
                            check=False).stdout.split()
    for pid in broker:
        os.kill(int(pid), 15)


KEEPER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from goship.transport import park
    from goship.transport.session import Session
    s = Session(["sh"], "here")
    s.wait_ready(10)
    print(s.run("echo $$; echo \\"$T\\"", None, 10).stdout, end="")
    ok = park.keep(Path(sys.argv[1]), "k1", s.proc.pid, s.marker, s.fds())
    s.release()
    print("kept" if ok else "not kept")
""")


def keep_in_another_process(d: Path) -> tuple[str, str]:
    """A goship-like process opens a shell, keeps it and exits: (shell pid, its $T)."""
    out = subprocess.run([sys.executable, "-c", KEEPER, str(d)], capture_output=True,
                         text=True, check=True, timeout=30).stdout.split()
    assert out[2] == "kept", out
    return out[0], out[1]


def adopt(d: Path, key: str = "k1") -> Session | None:
    got = park.take(d, key)
    if got is None:
        return None
    pid, marker, fds = got
    return Session.adopt(Adopted(pid, fds), "here", marker)


def test_a_shell_kept_by_an_exited_process_is_taken_by_the_next(keeping: Path) -> None:
    pid, tmp = keep_in_another_process(keeping)
    assert adopt(keeping, "other-host") is None  # kept per host and options
    s = adopt(keeping)
    assert s is not None
    res = s.run("echo $$; echo \"$T\"; cat", b"input", 10)
    assert res.stdout.split() == [pid, tmp, "input"]  # the same shell, its state intact
    assert adopt(keeping) is None  # one process at a time holds it
    s.close()
    deadline = time.monotonic() + 5
    while Path(tmp).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(tmp).exists()  # closed as any shell: its temporary directory removed


def test_a_kept_shell_that_ends_is_dropped(keeping: Path) -> None:
    pid, _ = keep_in_another_process(keeping)
    os.kill(int(pid), 9)
    time.sleep(0.3)
    assert adopt(keeping) is None


def test_kept_shells_end_after_their_idle_time_and_then_the_broker(tmp_path: Path) -> None:
    d = tmp_path / "ctl"
    d.mkdir(mode=0o700)
    # Its linger (3 s) outlasts the keeper's start on a busy machine: a broker gone before
    # the keeper connects would make the keeper start a broker of its own.
    broker = threading.Thread(target=park.serve, args=(d, 0.5, 3.0))
    broker.start()
    deadline = time.monotonic() + 5
    while not (d / park.SOCKET).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    _, tmp = keep_in_another_process(d)
    broker.join(timeout=20)
    assert not broker.is_alive()  # nothing left to keep: the broker ended
    assert not (d / park.SOCKET).exists()
    deadline = time.monotonic() + 5
    while Path(tmp).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(tmp).exists()  # the shell was ended, cleanly


def test_a_busy_shell_is_not_idle() -> None:
    s = Session(["sh"], "here")
    try:
        s.wait_ready(10)
        assert s.idle()
        s.send("sleep 0.2; echo done", None)
        assert not s.idle()  # a command in flight
        s.receive(10)
        assert s.idle()
        s.send("echo x", None)
        time.sleep(0.2)
        s.sent = False
        assert not s.idle()  # an answer nobody read
    finally:
        s.close()


class Trusting(Stub):
    """Stub, plus the rules a real host's keys would decide."""

    trusted = True

    def _still_trusted(self, s: Session, wait: float | None = None) -> str | None:
        s.run("true", None, wait or 10)  # it must answer
        return None if self.trusted else "the host's keys are no longer one known_hosts trusts"


def test_the_next_command_runs_on_the_shell_the_last_one_kept(
        keeping: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("goship.transport.ssh.control_dir", lambda: keeping)
    # The remote shell's pid, as the parent of a process it starts (a script of goship's
    # own, `sh -c`, would run in the shell's subshell, whose $PPID is the shell's parent).
    which = Cmd.of("env", "sh", "-c", "echo $PPID")
    first = Trusting(tmp_path)
    shell = first.check(which).stdout
    first.close()
    second = Trusting(tmp_path)
    assert second.check(which).stdout == shell
    assert second.opened == []  # no new shell
    second.close()
    third = Trusting(tmp_path)
    third.trusted = False  # e.g. the host's keys changed while it was kept
    assert third.check(which).stdout != shell
    assert len(third.opened) == 1
    third.close(wait=True)


def test_no_shell_is_kept_when_turned_off(
        keeping: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("goship.transport.ssh.control_dir", lambda: keeping)
    monkeypatch.setenv("GOSHIP_KEEP_SHELLS", "0")
    t = Trusting(tmp_path)
    t.check(Cmd.of("true"))
    shell = t.opened[0]
    t.close()
    assert shell.proc.wait(timeout=5) == 0  # ended, not kept
    assert not (keeping / park.SOCKET).exists()
