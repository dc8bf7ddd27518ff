"""The remote shell session and the SSH transport's handling of a connection that dies,
with a local `sh` standing in for `ssh host sh` (real processes, real pipes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from goship.command import Cmd
from goship.errors import CommandFailed, CommandTimedOut, Unreachable
from goship.transport import SshTransport
from goship.transport.session import Session, SessionLost


# direct: stdout straight through the session (goship's own commands), else through a file
@pytest.mark.parametrize("direct", [False, True])
def test_a_session_answers_ready_then_runs_commands_with_stdin(direct: bool) -> None:
    s = Session(["sh"], "here")
    try:
        s.wait_ready(10)
        res = s.run("cat; echo err >&2; exit 3", b"in\x00put", 10, direct=direct)
        assert (res.code, res.stdout, res.stderr) == (3, "in\x00put", "err\n")
    finally:
        s.close()


@pytest.mark.parametrize("direct", [False, True, None])
def test_answers_keep_every_byte_whatever_their_ends(direct: bool | None) -> None:
    s = Session(["sh"], "here")
    try:
        s.wait_ready(10)
        big = "".join(f"line {i}\n" for i in range(200_000))  # ~2 MB, many reads
        cases = {"printf 'no newline'": ("no newline", ""), "true": ("", ""),
                 "printf '\\n\\n'; printf 'e' >&2": ("\n\n", "e"),
                 f"echo {s.marker}x; echo ' {s.marker}'": (f"{s.marker}x\n {s.marker}\n", ""),
                 "seq 0 199999 | sed 's/^/line /'": (big, "")}
        for i, shell in enumerate(cases):  # all sent before any answer is read
            # None: the two ways alternate in one stream
            s.send(shell, None, direct=bool(i % 2) if direct is None else direct)
        for shell, (out, err) in cases.items():
            res = s.receive(30)
            assert (res.code, res.stdout, res.stderr) == (0, out, err), shell
    finally:
        s.close()


@pytest.mark.parametrize("direct", [False, True])
def test_every_stdin_arrives_byte_for_byte(direct: bool) -> None:
    """Text comes in a heredoc (no decoding process on the host), anything else through
    base64; either way the command reads exactly the bytes sent."""
    s = Session(["sh"], "here")
    try:
        s.wait_ready(10)
        inputs = [b"plain text\n", b"$HOME `id` \\n $(reboot) '\"\n", b"GOSHIP_EOF_\nEOF\n",
                  b"\xff\xfe latin \xe9\n", b"no newline at the end", b"nul\x00inside\n",
                  b"\n", b"", "".join(f"{i}\n" for i in range(40_000)).encode(),
                  "unicode \u00e9\u4e2d\n".encode()]
        for data in inputs:
            res = s.run("od -An -tx1 -v", data, 30, direct=direct)
            assert res.ok, data[:40]
            assert bytes.fromhex("".join(res.stdout.split())) == data, data[:40]
    finally:
        s.close()


def test_a_session_gone_before_the_command_left_says_not_sent() -> None:
    s = Session(["sh"], "here")
    s.wait_ready(10)
    s.close(kill=True)
    with pytest.raises(SessionLost) as info:
        s.run("true", None, 10)
    assert info.value.sent is False
    assert "here: cannot connect over ssh" in info.value.line()


def test_a_session_lost_mid_command_says_it_may_have_run() -> None:
    s = Session(["sh"], "here")
    s.wait_ready(10)
    with pytest.raises(SessionLost) as info:
        s.run("kill -9 $$; sleep 5", None, 10)  # the shell dies under the command
    assert info.value.sent is True


class Stub(SshTransport):
    """An SshTransport whose connection is a local shell; counts the shells it opens."""

    def __init__(self, log: Path) -> None:
        super().__init__("root@h9")
        self.log = log
        self.opened: list[Session] = []
        self.retired = 0

    def master_running(self) -> bool:
        return False

    def _retire_master(self) -> None:
        self.retired += 1

    def _new_session(self) -> Session:
        s = Session(["sh"], self.name)
        self.opened.append(s)
        return s


def test_a_command_whose_connection_was_already_gone_runs_once_on_a_new_one(
        tmp_path: Path) -> None:
    t = Stub(tmp_path)
    log = tmp_path / "ran"
    t.check(Cmd.of("true"))
    first = t.opened[0]
    first.proc.kill()  # the connection dies between two commands...
    first.proc.wait()
    t.session = first
    first.alive = lambda: True  # type: ignore[method-assign]  # ...unnoticed until used
    t.check(Cmd.of("sh", "-c", 'echo x >> "$1"', "x", str(log)))
    assert log.read_text() == "x\n"  # ran exactly once, over a second connection
    assert len(t.opened) == 2
    assert t.retired == 1
    t.close()


def test_a_command_lost_mid_way_is_not_run_again(tmp_path: Path) -> None:
    t = Stub(tmp_path)
    log = tmp_path / "ran"
    t.check(Cmd.of("true"))
    shell = t.opened[0].proc.pid  # the remote shell: it dies under the command
    with pytest.raises(Unreachable):
        t.run(Cmd.of("sh", "-c", 'echo x >> "$1"; kill -9 "$2"; sleep 5', "x", str(log),
                     str(shell)))
    assert log.read_text() == "x\n"
    assert len(t.opened) == 1
    # and the host is known down for a while: the next command fails at once
    with pytest.raises(Unreachable):
        t.run(Cmd.of("true"))
    assert len(t.opened) == 1


def test_a_timed_out_command_ends_its_session(tmp_path: Path) -> None:
    t = Stub(tmp_path)
    with pytest.raises(CommandTimedOut) as info:
        t.run(Cmd.of("sleep", "30"), timeout=0.3)
    assert info.value.line() == "root@h9: `sleep 30` timed out after 0.3s"
    assert not t.opened[0].alive()
    assert t.check(Cmd.of("echo", "ok")).stdout == "ok\n"  # a new session next time
    t.close()


def test_commands_sent_together_answer_in_order_each_with_its_own_output(
        tmp_path: Path) -> None:
    t = Stub(tmp_path)
    cmds = [Cmd.of("sh", "-c", "echo one; echo e1 >&2; exit 1"),
            Cmd.of("cat").with_stdin(b"two\n"),
            Cmd.of("sh", "-c", "printf three")]
    got = t.run_all(cmds)
    assert [(r.code, r.stdout, r.stderr) for r in got] == \
        [(1, "one\n", "e1\n"), (0, "two\n", ""), (0, "three", "")]
    assert len(t.opened) == 1
    t.close()


def test_a_later_command_runs_in_order_and_its_failure_is_raised_by_settle(
        tmp_path: Path) -> None:
    t = Stub(tmp_path)
    log = tmp_path / "order"
    t.later(Cmd.of("sh", "-c", 'echo a >> "$1"', "x", str(log)))
    t.later(Cmd.of("sh", "-c", 'echo b >> "$1"; echo no room >&2; exit 4', "x", str(log)))
    # A command after them runs after them on the host, and still answers for itself.
    assert t.run(Cmd.of("sh", "-c", 'echo c >> "$1"; cat "$1"', "x", str(log))).stdout == \
        "a\nb\nc\n"
    with pytest.raises(CommandFailed) as info:
        t.settle()
    assert "exited 4" in info.value.line()
    assert "no room" in info.value.line()
    t.settle()  # reported once
    t.close()


def test_close_reads_what_later_commands_owe_before_the_shell_ends(tmp_path: Path) -> None:
    t = Stub(tmp_path)
    log = tmp_path / "done"
    t.later(Cmd.of("sh", "-c", 'sleep 0.3; echo done > "$1"', "x", str(log)))
    t.close(wait=False)
    assert log.read_text() == "done\n"  # ran to the end before close returned
