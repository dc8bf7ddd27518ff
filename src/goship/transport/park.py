"""Remote shells kept between goship commands, as ControlPersist keeps the connection.

A new shell over a kept SSH connection still costs a session on the host: sshd's session
setup and the user's shell start-up files (bash reads ~/.bashrc for every SSH command; on
hosts where it runs `pyenv init` or the like, that is 0.1 s or more per host). So a goship
command that ends with a host's shell idle hands the shell's pipes (SCM_RIGHTS over a unix
socket) to a small broker process, and the next goship command that would open the same
shell (same ssh options, host and user) takes them back instead: a `rollback` right after
a `deploy` or `status` starts on a shell that is already there.

Rules:
- only an idle shell is kept (nothing in flight, nothing unread); a shell that prints
  anything or ends while kept is dropped;
- a kept shell is never trusted blindly: the taker first checks that it answers and that
  the host's keys are still ones known_hosts trusts (ssh.py), else drops it;
- one process at a time holds a shell; the broker keeps a few per host, each for
  KEEP_SECONDS of idleness, and exits when it keeps none;
- the socket lives in goship's private control directory (0700, like the ControlMaster
  sockets, which give the same power), and the broker serves only its own uid;
- GOSHIP_KEEP_SHELLS=0 turns it off: every command opens and ends its own shells.

Closing a kept shell's stdin ends it cleanly (its temporary directory removed)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

KEEP_SECONDS = 300.0  # a kept shell's idle life
PER_KEY = 4  # shells kept per host and options (concurrent goship commands)
LINGER_SECONDS = 5.0  # the broker's life once it keeps nothing
SOCKET = "shells.sock"


def enabled() -> bool:
    return os.environ.get("GOSHIP_KEEP_SHELLS", "1") not in ("0", "no", "false", "off")


# ---- the client side (a goship command) -----------------------------------------------
def _connect(directory: Path, *, start: bool) -> socket.socket | None:
    path = str(directory / SOCKET)
    deadline = time.monotonic() + 3.0
    started = 0.0
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(3.0)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            if not start or time.monotonic() > deadline:
                return None
        if time.monotonic() - started > 1.0:  # again if one was just leaving as we came
            # Detached from this command (its own session, no inherited pipes), it outlives
            # the command by design; this file alone, isolated: it needs only the standard
            # library, so it starts fast.
            subprocess.Popen([sys.executable, "-I", __file__, str(directory)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
            started = time.monotonic()
        time.sleep(0.01)


def _ask(directory: Path, msg: dict[str, object], fds: list[int] | None = None, *,
         start: bool = False) -> tuple[dict[str, object], list[int]]:
    sock = _connect(directory, start=start)
    if sock is None:
        return {}, []
    with sock:
        try:
            socket.send_fds(sock, [json.dumps(msg).encode()], fds or [])
            data, got, _, _ = socket.recv_fds(sock, 1 << 16, 3)
        except OSError:
            return {}, []
    try:
        reply = json.loads(data or b"{}")
    except ValueError:
        reply = {}
    return (reply if isinstance(reply, dict) else {}), list(got)


def keep(directory: Path, key: str, pid: int, marker: str, fds: list[int]) -> bool:
    """Hand an idle shell to the broker (started if need be). True: the broker holds it and
    the caller must only close its own copies of the pipes."""
    reply, _ = _ask(directory, {"op": "keep", "key": key, "pid": pid, "marker": marker},
                    fds, start=True)
    return reply.get("ok") is True


def take(directory: Path, key: str) -> tuple[int, str, list[int]] | None:
    """A kept shell for `key`: (pid, marker, [stdin, stdout, stderr]), or None."""
    reply, fds = _ask(directory, {"op": "take", "key": key})
    pid, marker = reply.get("pid"), reply.get("marker")
    if isinstance(pid, int) and isinstance(marker, str) and len(fds) == 3:
        return pid, marker, fds
    for fd in fds:
        os.close(fd)
    return None


# ---- the broker ------------------------------------------------------------------------
@dataclass
class Kept:
    key: str
    pid: int
    marker: str
    fds: list[int]
    since: float

    def drop(self) -> None:
        for fd in self.fds:  # stdin's end: the remote shell exits, and ssh with it
            with contextlib.suppress(OSError):
                os.close(fd)


def serve(directory: Path, keep_seconds: float = KEEP_SECONDS,
          linger_seconds: float = LINGER_SECONDS) -> None:
    """Keep shells until none is left (then `linger_seconds` more). One broker per
    directory: a second one started at the same moment finds the lock taken and leaves."""
    lock = open(directory / "shells.lock", "w")  # noqa: SIM115 (held for the process's life)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return
    path = directory / SOCKET
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old = os.umask(0o177)
    try:
        server.bind(str(path))
    finally:
        os.umask(old)
    server.listen(16)
    kept: list[Kept] = []
    empty_since = time.monotonic()
    while True:
        now = time.monotonic()
        for k in [k for k in kept if now - k.since >= keep_seconds]:
            kept.remove(k)
            k.drop()
        if kept:
            empty_since = now
        elif now - empty_since >= linger_seconds:
            break
        until = min([k.since + keep_seconds for k in kept] + [now + linger_seconds])
        watched = {fd: k for k in kept for fd in k.fds[1:]}
        ready, _, _ = select.select([server.fileno(), *watched], [], [],
                                    max(0.0, until - now))
        for r in ready:
            if r == server.fileno():
                conn, _ = server.accept()
                with conn:
                    _serve_one(conn, kept)
            else:
                k = watched[r]
                # Output or the end of a kept shell: it is not idle any more.
                if k in kept:
                    kept.remove(k)
                    k.drop()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    server.close()
    for k in kept:
        k.drop()
    lock.close()


def _serve_one(conn: socket.socket, kept: list[Kept]) -> None:
    conn.settimeout(2.0)
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    except OSError:
        return
    try:
        msg = json.loads(data)
    except ValueError:
        msg = {}
    if uid != os.getuid() or not isinstance(msg, dict):
        for fd in fds:
            os.close(fd)
        return
    key = str(msg.get("key"))
    if msg.get("op") == "keep" and len(fds) == 3:
        same = [k for k in kept if k.key == key]
        ok = len(same) < PER_KEY and isinstance(msg.get("pid"), int) and \
            isinstance(msg.get("marker"), str)
        if ok:
            kept.append(Kept(key, int(msg["pid"]), str(msg["marker"]), fds, time.monotonic()))
        else:
            for fd in fds:
                os.close(fd)
        with contextlib.suppress(OSError):
            conn.send(json.dumps({"ok": ok}).encode())
        return
    for fd in fds:
        os.close(fd)
    if msg.get("op") == "take":
        same = [k for k in kept if k.key == key]
        if same:
            k = same[-1]  # the most recently used
            try:
                socket.send_fds(conn, [json.dumps({"pid": k.pid, "marker": k.marker}).encode()],
                                k.fds)
            except OSError:
                return  # the taker is gone: the shell stays kept
            kept.remove(k)
            for fd in k.fds:  # the taker holds them now
                os.close(fd)
            return
    with contextlib.suppress(OSError):
        conn.send(b"{}")


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
