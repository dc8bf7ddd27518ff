"""One long-lived remote shell per host and goship process: each command is written to its
stdin and its output comes back framed, so a command costs a pipe round trip instead of a
new SSH session (on a systemd host, every new session goes through PAM and logind: ~150 ms).
The shell ends with the process; the SSH connection under it may outlive both (ssh.py)."""

from __future__ import annotations

import base64
import os
import secrets
import select
import subprocess
import time

from goship.errors import Unreachable
from goship.transport.base import Result

BOOT = 'T=$(mktemp -d "${TMPDIR:-/tmp}/goship.XXXXXX") || exit 70\ntrap \'rm -rf "$T"\' EXIT\n'


class SessionLost(Unreachable):
    """The connection ended under the session. `sent`: whether the command in flight may
    have reached the host (if not, running it again cannot run it twice)."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class Session:
    def __init__(self, argv: list[str], name: str) -> None:
        self.name = name
        self.marker = "GOSHIP-" + secrets.token_hex(8)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.buf = b""
        self.sent = False  # whether a command may have reached the host
        self._write(BOOT.encode() + f"echo {self.marker} ready\n".encode())

    def wait_ready(self, timeout: float) -> None:
        """Until the remote shell answers: the connection (new or shared) really works.
        TimeoutError when it does not answer in time, SessionLost when ssh gave up."""
        deadline = time.monotonic() + timeout
        while self._read_until(None, deadline).decode(errors="replace").split() != \
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

    def _read_until(self, need: int | None, deadline: float) -> bytes:
        """`need` bytes, or a line when need is None."""
        if self.proc.stdout is None:
            raise self._dead()
        fd = self.proc.stdout.fileno()
        while True:
            if need is None:
                nl = self.buf.find(b"\n")
                if nl >= 0:
                    out, self.buf = self.buf[:nl], self.buf[nl + 1:]
                    return out
            elif len(self.buf) >= need:
                out, self.buf = self.buf[:need], self.buf[need:]
                return out
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

    def run(self, shell: str, stdin: bytes | None, timeout: float) -> Result:
        self.send(shell, stdin)
        return self.receive(timeout)

    def send(self, shell: str, stdin: bytes | None) -> None:
        """Write one command; its answer comes back, in order, from `receive`. Several may
        be sent before the first is received (the shell runs them one after another)."""
        script = []
        if stdin is not None:
            end = "GOSHIP_EOF_" + secrets.token_hex(8)
            encoded = base64.encodebytes(stdin).decode()
            script.append(f"base64 -d > \"$T/i\" <<'{end}'\n{encoded}{end}\n")
            redirect = '< "$T/i"'
        else:
            redirect = "< /dev/null"
        script.append(
            f'( {shell}\n) {redirect} > "$T/o" 2> "$T/e"; r=$?\n'
            f'printf "%s %s %s %s\\n" {self.marker} "$r" "$(wc -c < "$T/o")" '
            f'"$(wc -c < "$T/e")"\ncat "$T/o" "$T/e"\n')
        data = "".join(script).encode()
        if self.proc.poll() is not None:  # gone before anything was written: not sent
            raise self._dead()
        self.sent = True
        self._write(data)

    def receive(self, timeout: float) -> Result:
        deadline = time.monotonic() + timeout
        header = self._read_until(None, deadline).decode(errors="replace").split()
        while header[:1] != [self.marker]:  # anything else on stdout is not ours
            header = self._read_until(None, deadline).decode(errors="replace").split()
        code, out_len, err_len = (int(x) for x in header[1:4])
        out = self._read_until(out_len, deadline)
        err = self._read_until(err_len, deadline)
        self.sent = False
        return Result(code, out.decode(errors="replace"), err.decode(errors="replace"))
