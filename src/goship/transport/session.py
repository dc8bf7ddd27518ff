"""One long-lived remote shell per host and goship process: each command is written to its
stdin and its output comes back framed, so a command costs a pipe round trip instead of a
new SSH session (on a systemd host, every new session goes through PAM and logind: ~150 ms).
The shell ends with the process; the SSH connection under it may outlive both (ssh.py)."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import select
import signal
import subprocess
import time
from typing import IO, Protocol

from goship.errors import Unreachable
from goship.transport.base import Result

BOOT = 'T=$(mktemp -d "${TMPDIR:-/tmp}/goship.XXXXXX") || exit 70\ntrap \'rm -rf "$T"\' EXIT\n'


class SessionLost(Unreachable):
    """The connection ended under the session. `sent`: whether the command in flight may
    have reached the host (if not, running it again cannot run it twice)."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class Proc(Protocol):
    """What a session needs of the process under it: its own child (Popen), or one another
    goship process started and handed over (Adopted)."""

    pid: int
    returncode: int | None
    stdin: IO[bytes] | None
    stdout: IO[bytes] | None
    stderr: IO[bytes] | None

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def kill(self) -> None: ...


class Adopted:
    """A remote shell's ssh process started by another goship process (kept between
    commands, see park.py): its pipes came over a unix socket; it is not our child, so its
    end is seen in /proc, not by waitpid."""

    def __init__(self, pid: int, fds: list[int]) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.stdin: IO[bytes] | None = os.fdopen(fds[0], "wb")
        self.stdout: IO[bytes] | None = os.fdopen(fds[1], "rb")
        self.stderr: IO[bytes] | None = os.fdopen(fds[2], "rb")

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                with open(f"/proc/{self.pid}/stat", "rb") as f:
                    # state follows the parenthesised command name; Z: exited, not reaped
                    running = f.read().rpartition(b")")[2].split()[0] != b"Z"
            except (OSError, IndexError):
                running = False
            if not running:
                self.returncode = 255
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
            time.sleep(0.01)
        return self.returncode or 255

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        self.returncode = self.returncode or -9


class Session:
    def __init__(self, argv: list[str], name: str) -> None:
        self.name = name
        self.marker = "GOSHIP-" + secrets.token_hex(8)
        self.proc: Proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.buf = b""
        self.sent = False  # whether a command may have reached the host
        self._write(BOOT.encode() + f"echo {self.marker} ready\n".encode())

    @classmethod
    def adopt(cls, proc: Adopted, name: str, marker: str) -> Session:
        """A shell another goship process opened and kept (its temporary directory and
        framing marker come with it)."""
        s = cls.__new__(cls)
        s.name, s.marker, s.proc = name, marker, proc
        s.buf, s.sent = b"", False
        return s

    def idle(self) -> bool:
        """Alive, nothing in flight and nothing unread: another process may take it over."""
        if self.sent or self.buf or not self.alive() or self.proc.stdout is None:
            return False
        ready, _, _ = select.select([self.proc.stdout.fileno()], [], [], 0)
        return not ready

    def fds(self) -> list[int]:
        pipes = (self.proc.stdin, self.proc.stdout, self.proc.stderr)
        return [p.fileno() for p in pipes if p is not None]

    def release(self) -> None:
        """Close this process's ends of the pipes once another process holds them: the
        shell goes on."""
        for p in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if p is not None:
                with contextlib.suppress(OSError):
                    p.close()
        self.proc.stdin = self.proc.stdout = self.proc.stderr = None

    def wait_ready(self, timeout: float) -> None:
        """Until the remote shell answers: the connection (new or shared) really works.
        TimeoutError when it does not answer in time, SessionLost when ssh gave up."""
        deadline = time.monotonic() + timeout
        while self._read_until(b"\n", deadline).decode(errors="replace").split() != \
                [self.marker, "ready"]:
            pass

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, *, kill: bool = False, wait: bool = True) -> None:
        """End the remote shell: at its stdin's end it removes its temporary directory and
        exits, and ssh with it. `wait=False` when this process is about to exit anyway: the
        shell finishes by itself, and the user does not wait for it."""
        if self.proc.poll() is None and kill:
            self.proc.kill()
            self.proc.wait()
        elif self.proc.poll() is None:
            try:
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
                if wait:
                    self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def _write(self, data: bytes) -> None:
        if self.proc.stdin is None:
            raise self._dead()
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._dead() from None

    def _dead(self) -> SessionLost:
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        err = b""
        if self.proc.stderr is not None:
            err = self.proc.stderr.read() or b""
        lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"the connection ended (ssh exit {self.proc.returncode})"
        return SessionLost(f"{self.name}: cannot connect over ssh: {reason}", sent=self.sent)

    def _read_until(self, end: bytes, deadline: float) -> bytes:
        """Up to `end` (consumed, not returned)."""
        if self.proc.stdout is None:
            raise self._dead()
        fd = self.proc.stdout.fileno()
        start = 0  # searched already up to here (a large output comes in many chunks)
        while True:
            at = self.buf.find(end, start)
            if at >= 0:
                out, self.buf = self.buf[:at], self.buf[at + len(end):]
                return out
            start = max(0, len(self.buf) - len(end) + 1)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise self._dead()
            self.buf += chunk

    def run(self, shell: str, stdin: bytes | None, timeout: float, *,
            direct: bool = False) -> Result:
        self.send(shell, stdin, direct=direct)
        return self.receive(timeout)

    def send(self, shell: str, stdin: bytes | None, *, direct: bool = False) -> None:
        """Write one command; its answer comes back, in order, from `receive`. Several may
        be sent before the first is received (the shell runs them one after another).
        `direct`: its stdout comes straight through (a command that leaves nothing running
        that could write to it later), its exit code after it."""
        script = []
        here = b""  # a heredoc's body (bytes as they are), after the line redirecting from it
        # a heredoc's last line
        end = "GOSHIP_EOF_" + secrets.token_hex(8) if stdin is not None else ""
        if stdin is not None and stdin.endswith(b"\n") and b"\0" not in stdin:
            # Text goes as it is, in a heredoc (quoted: nothing in it is expanded).
            redirect = f"<<'{end}'"
            here = stdin + end.encode() + b"\n"
        elif stdin is not None:
            encoded = base64.encodebytes(stdin).decode()
            script.append(f"base64 -d > \"$T/i\" <<'{end}'\n{encoded}{end}\n")
            redirect = '< "$T/i"'
        else:
            redirect = "< /dev/null"
        # The answer: a header line, then stdout and stderr, each ended by a line of the
        # marker (random per session). Shell builtins but for a `cat` of an output that is
        # not empty: a command costs the host one process more than its own, none more when
        # its stdout comes straight through (then the header says "-" and the exit code
        # follows stdout on the marker's line).
        m = self.marker
        err = f'[ -s "$T/e" ] && cat "$T/e"; printf "\\n%s\\n" {m}\n'
        if direct:
            script.append(
                f'printf "%s -\\n" {m}; ( {shell}\n) {redirect} 2> "$T/e"; r=$?\n')
            tail = f'printf "\\n%s %s\\n" {m} "$r"; {err}'
        else:
            script.append(
                f'( {shell}\n) {redirect} > "$T/o" 2> "$T/e"; r=$?\n')
            tail = (f'printf "%s %s\\n" {m} "$r"; [ -s "$T/o" ] && cat "$T/o"; '
                    f'printf "\\n%s\\n" {m}; {err}')
        data = "".join(script).encode() + here + tail.encode()
        if self.proc.poll() is not None:  # gone before anything was written: not sent
            raise self._dead()
        self.sent = True
        self._write(data)

    def receive(self, timeout: float) -> Result:
        deadline = time.monotonic() + timeout
        header = self._read_until(b"\n", deadline).decode(errors="replace").split()
        while header[:1] != [self.marker]:  # anything else on stdout is not ours
            header = self._read_until(b"\n", deadline).decode(errors="replace").split()
        end = b"\n" + self.marker.encode() + b"\n"
        if header[1:2] == ["-"]:
            out = self._read_until(b"\n" + self.marker.encode() + b" ", deadline)
            code = int(self._read_until(b"\n", deadline))
        else:
            code = int(header[1])
            out = self._read_until(end, deadline)
        err = self._read_until(end, deadline)
        self.sent = False
        return Result(code, out.decode(errors="replace"), err.decode(errors="replace"))
