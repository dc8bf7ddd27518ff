"""SSH through the OpenSSH client, so ~/.ssh/config (aliases, User, Port, IdentityFile,
ProxyJump), the agent and known_hosts work exactly as they do for `ssh` itself.

One master connection per host (ControlMaster) carries every command, and it outlives the
goship command that opened it (ControlPersist), so the next command pays no handshake.
Rules for a connection that other goship processes may share:
- a process never tears it down (no `ssh -O exit`): it only ends its own remote shell;
- a master is never trusted: each process first checks it answers (`-O check`, then its
  remote shell must answer within the connect timeout, and the host's keys must still
  include one known_hosts trusts for it); a dead or stale one is retired
  with `-O stop` (no new sessions; the ones in use keep running) and replaced by a fresh
  connection, which verifies the host key against known_hosts again;
- a master is shared only by processes that would have made the same connection: its
  socket name covers the identity, options and the known_hosts contents, so a key
  removed from known_hosts is never bypassed through an older connection."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shlex
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from goship.command import Cmd, output_direct, subshell_text
from goship.config.validators import split_host
from goship.errors import CommandTimedOut, PrerequisiteError, TransportError, Unreachable
from goship.transport import park
from goship.transport.base import PUT_SCRIPT, Result, Transport
from goship.transport.session import Adopted, Session, SessionLost
from goship.ui import ui

DOWN_SECONDS = 30.0
TAKE_WAIT = 3.0  # a kept shell answers at once or is dropped (a cut host: see _open)
PERSIST_SECONDS = 600  # an idle master stays this long after the last command
DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2",
                       "/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")


@dataclass(frozen=True)
class SshOptions:
    identity_file: str | None = None
    known_hosts: str | None = None  # None: the user's own known_hosts files
    connect_timeout: int = 10
    sudo: bool = False
    extra: tuple[str, ...] = field(default_factory=tuple)


def control_dir() -> Path:
    """Short and private: unix socket paths are limited to ~100 bytes, and whoever can
    reach a control socket can run commands on the host as us."""
    d = Path(tempfile.gettempdir()) / f"goship-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        d.mkdir(mode=0o700)
    st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PrerequisiteError(
            f"{d}: the SSH control directory must be a directory of uid {os.getuid()} with "
            f"mode 0700 (found uid {st.st_uid}, mode {stat.filemode(st.st_mode)})",
            hint=f"remove {d}; goship creates it again")
    return d


def connection_key(o: SshOptions, known_hosts_files: list[str]) -> str:
    """What makes two connections to the same user@host:port interchangeable: identity,
    options and what known_hosts trusts."""
    h = hashlib.sha256(json.dumps([o.identity_file, o.known_hosts, list(o.extra)]).encode())
    for f in known_hosts_files:
        try:
            h.update(Path(f).read_bytes())
        except OSError:
            h.update(b"-")
    return h.hexdigest()[:10]


# Read with the shell's own `read`: no process started on the host for it.
HOST_KEYS = ('for f in /etc/ssh/ssh_host_*_key.pub; do [ -f "$f" ] || continue; '
             'while IFS= read -r l || [ -n "$l" ]; do printf "%s\\n" "$l"; done < "$f"; done; '
             'true')


def key_blobs(text: str, *, pub: bool = False) -> set[str]:
    """The base64 key blobs of known_hosts lines (`hosts type blob`; marker lines such as
    @revoked and @cert-authority are not host keys to trust), or of *.pub lines
    (`type blob comment`) with pub."""
    blobs = set()
    at = 1 if pub else 2
    for line in text.splitlines():
        f = line.split()
        if len(f) > at and not f[0].startswith(("#", "@")):
            blobs.add(f[at])
    return blobs


class SshTransport(Transport):
    def __init__(self, spec: str, options: SshOptions | None = None,
                 name: str | None = None) -> None:
        self.spec = spec
        self.options = options or SshOptions()
        user, host, port = split_host(spec)
        self.user, self.host, self.port = user, host, port
        self.name = name or (host if user is None else f"{user}@{host}")
        self.session: Session | None = None
        self.pending: list[Cmd] = []  # sent by `later`, answers not read yet (in order)
        self.lock = threading.Lock()
        self._control_path: str | None = None
        self._config: dict[str, str] | None = None
        # After a lost connection, fail fast for a while instead of waiting out a connect
        # timeout on every later step (restoring the other hosts must not wait for this one).
        self.down: tuple[float, Unreachable] | None = None

    def control_path(self) -> str:
        if self._control_path is None:
            key = connection_key(self.options, self.known_hosts_files())
            # %C: a hash of this machine, host, port and user.
            self._control_path = f"{control_dir()}/{key}-%C"
        return self._control_path

    def option_argv(self) -> list[str]:
        o = self.options
        argv = [
            "ssh",
            "-o", "BatchMode=yes",  # never prompt; an unknown host key fails, never accepted
            "-o", f"ConnectTimeout={o.connect_timeout}",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
        ]
        if o.identity_file:
            argv += ["-o", f"IdentityFile={o.identity_file}", "-o", "IdentitiesOnly=yes"]
        if o.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={o.known_hosts}",
                     "-o", "StrictHostKeyChecking=yes"]
        for x in o.extra:
            argv += ["-o", x]
        if self.user:
            argv += ["-l", self.user]
        if self.port:
            argv += ["-p", self.port]
        return argv

    def base_argv(self) -> list[str]:
        return [*self.option_argv(), "-o", "ControlMaster=auto",
                "-o", f"ControlPersist={PERSIST_SECONDS}",
                "-o", f"ControlPath={self.control_path()}"]

    def resolved(self) -> dict[str, str]:
        """The client's own view of this host (`ssh -G`: ~/.ssh/config applied)."""
        if self._config is None:
            res = subprocess.run([*self.option_argv(), "-G", "--", self.host],
                                 capture_output=True, text=True, timeout=10, check=False)
            self._config = {}
            for line in res.stdout.splitlines():
                k, _, v = line.partition(" ")
                self._config[k.lower()] = v
        return self._config

    def known_hosts_files(self) -> list[str]:
        c = self.resolved()
        files = f"{c.get('userknownhostsfile', '')} {c.get('globalknownhostsfile', '')}"
        return [os.path.expanduser(f) for f in files.split()] or \
            [os.path.expanduser(f) for f in DEFAULT_KNOWN_HOSTS]

    def trusted_keys(self) -> set[str]:
        """The host keys known_hosts trusts for this host."""
        c = self.resolved()
        name = c.get("hostkeyalias") or c.get("hostname") or self.host
        port = c.get("port", "22")
        lookup = name if port == "22" else f"[{name}]:{port}"
        out: set[str] = set()
        for f in self.known_hosts_files():
            if not Path(f).is_file():
                continue
            res = subprocess.run(["ssh-keygen", "-F", lookup, "-f", f], capture_output=True,
                                 text=True, timeout=10, check=False)
            out |= key_blobs(res.stdout)
        return out

    def _remote(self, argv: tuple[str, ...]) -> str:
        if self.options.sudo and argv[:1] != ("sudo",):
            argv = ("sudo", "-n", "--", *argv)
        return shlex.join(argv)

    # ---- the master connection ---------------------------------------------------------
    def _control(self, op: str) -> bool:
        """`ssh -O op`: talks to the local master only, never to the host."""
        try:
            res = subprocess.run([*self.base_argv(), "-O", op, "--", self.host],
                                 capture_output=True, timeout=10, check=False)
        except subprocess.TimeoutExpired:
            return False
        return res.returncode == 0

    def master_running(self) -> bool:
        return self._control("check")

    def _retire_master(self) -> None:
        # `stop`, not `exit`: the master takes no new sessions and ends once the sessions
        # on it (maybe another goship's) are done; the socket name is free at once.
        self._control("stop")

    def _session_argv(self) -> list[str]:
        shell = self._remote(("sh",))  # with sudo, the session's shell itself runs as root
        return [*self.base_argv(), "--", self.host, shell]

    def _new_session(self) -> Session:
        return Session(self._session_argv(), self.name)

    def _keep_key(self) -> str | None:
        """Which kept shells this transport may take or leave: the same argv (options,
        identity, known_hosts contents, user, host, port). None: no keeping."""
        if not park.enabled():
            return None
        return hashlib.sha256(json.dumps(self._session_argv()).encode()).hexdigest()

    def _still_trusted(self, s: Session, wait: float | None = None) -> str | None:
        """Why a working shared master must not be used, or None. The connection was
        authenticated when it was made; the host's key may have changed since."""
        res = s.run(HOST_KEYS, None, wait or float(self.options.connect_timeout), direct=True)
        if not key_blobs(res.stdout, pub=True) & self.trusted_keys():
            return "the host's keys are no longer one known_hosts trusts"
        return None

    def _taken(self) -> Session | None:
        """A shell an earlier goship command kept (park.py), checked like a shared master:
        it answers at once and the host's keys are still trusted; else it is dropped."""
        key = self._keep_key()
        got = park.take(control_dir(), key) if key else None
        if got is None:
            return None
        pid, marker, fds = got
        s = Session.adopt(Adopted(pid, fds), self.name, marker)
        try:
            why = self._still_trusted(s, TAKE_WAIT)
        except (TimeoutError, SessionLost) as e:
            why = "it did not answer" if isinstance(e, TimeoutError) else e.message
        if why is None:
            ui.debug(f"{self.name}: using the shell an earlier goship command kept")
            return s
        s.close(kill=True)
        ui.debug(f"{self.name}: not using the kept shell ({why})")
        return None

    def _open(self) -> Session:
        """A remote shell that answered, over a master that works."""
        taken = self._taken()
        if taken is not None:
            return taken
        wait = float(self.options.connect_timeout)
        if self.master_running():
            s = self._new_session()
            try:
                s.wait_ready(wait)
                why = self._still_trusted(s)
                if why is None:
                    return s
            except (TimeoutError, SessionLost) as e:
                why = "it did not answer" if isinstance(e, TimeoutError) else e.message
            s.close(kill=True)
            ui.debug(f"{self.name}: not using the shared ssh connection ({why}); "
                     "replacing it")
            self._retire_master()
        s = self._new_session()  # a fresh connection: handshake and host key check
        try:
            # ssh gives up by itself after ConnectTimeout; the margin covers key exchange
            # and authentication on a slow host.
            s.wait_ready(wait + 10)
        except TimeoutError:
            s.close(kill=True)
            raise Unreachable(f"{self.name}: cannot connect over ssh: no answer within "
                              f"{wait + 10:g}s") from None
        return s

    def _session(self) -> Session:
        if self.session is None or not self.session.alive():
            self.session = None
            self.session = self._open()
        return self.session

    # ---- the transport ------------------------------------------------------------------
    def _argv(self, cmd: Cmd) -> str:
        return subshell_text(cmd.argv if self.options.sudo else cmd.full_argv())

    def _live_session(self) -> Session:
        if self.down is not None and time.monotonic() - self.down[0] < DOWN_SECONDS:
            raise self.down[1]
        try:
            return self._session()
        except Unreachable as e:
            self.down = (time.monotonic(), e)
            raise

    def _lost(self, session: Session, e: BaseException, what: str, timeout: float) -> None:
        """The session is unusable after a timeout or a lost connection: raise the error
        the caller sees. Answers still owed by commands sent `later` are lost with it."""
        lost, self.pending = self.pending, []
        for c in lost:
            self._late(c, Result(255, "", "the connection ended before it answered"))
        if isinstance(e, TimeoutError):
            session.close(kill=True)
            self.session = None
            raise CommandTimedOut(self.name, what, timeout) from None
        self.session = None
        if isinstance(e, SessionLost):
            self.down = (time.monotonic(), e)
        raise e

    def _drain(self, timeout: float = 120.0) -> None:
        """Read the answers owed by commands sent `later` (they come first on the stream)."""
        while self.pending:
            session = self.session
            if session is None:
                self._lost_quietly()
                return
            try:
                res = session.receive(timeout)
            except (TimeoutError, SessionLost) as e:
                self._lost(session, e, self.pending[0].display(), timeout)
            c = self.pending.pop(0)
            if not res.ok:
                self._late(c, res)

    def _lost_quietly(self) -> None:
        lost, self.pending = self.pending, []
        for c in lost:
            self._late(c, Result(255, "", "the connection ended before it answered"))

    def run(self, cmd: Cmd, *, timeout: float = 120.0) -> Result:
        if self.pending and len(cmd.stdin or b"") <= 1 << 16:
            # Sent behind the commands whose answers are owed, not after reading them.
            return self.run_all([cmd], timeout=timeout)[0]
        ui.debug(f"{self.name}: {cmd.display()}")
        with self.lock:
            self._drain()
            for attempt in (1, 2):
                session = self._live_session()
                try:
                    return session.run(self._argv(cmd), cmd.stdin, timeout,
                                       direct=output_direct(cmd.argv))
                except TimeoutError as e:
                    self._lost(session, e, cmd.display(), timeout)
                except SessionLost as e:
                    self.session = None
                    if attempt == 1 and not e.sent:
                        # The connection was gone before the command left: running it over
                        # a fresh connection cannot run it twice.
                        ui.debug(f"{self.name}: {e.message}; retrying over a new connection")
                        self._retire_master()
                        continue
                    self.down = (time.monotonic(), e)
                    raise
            raise AssertionError("unreachable: the second attempt returns or raises")

    def run_all(self, cmds: Sequence[Cmd], *, timeout: float = 120.0) -> list[Result]:
        if sum(len(c.stdin or b"") for c in cmds) > 1 << 16 or \
                (len(cmds) < 2 and not self.pending):
            # Large inputs go one by one: all written before any answer is read, they could
            # fill both pipes.
            return super().run_all(cmds, timeout=timeout)
        for c in cmds:
            ui.debug(f"{self.name}: {c.display()}")
        with self.lock:
            if self.pending and self.session is None:
                self._lost_quietly()
            session = self._live_session()
            out = []
            try:
                for c in cmds:
                    session.send(self._argv(c), c.stdin, direct=output_direct(c.argv))
                # The answers owed by `later` commands come first on the stream: the host
                # ran those first, in order; these were sent without waiting for them.
                self._drain(timeout)
                for _ in cmds:
                    out.append(session.receive(timeout))
            except (TimeoutError, SessionLost) as e:
                self._lost(session, e, cmds[len(out)].display(), timeout)
            return out

    def later(self, cmd: Cmd, *, timeout: float = 120.0) -> None:
        if cmd.stdin is not None and len(cmd.stdin) > 1 << 16:
            super().later(cmd, timeout=timeout)
            return
        ui.debug(f"{self.name}: {cmd.display()} (answer read later)")
        with self.lock:
            if len(self.pending) >= 16:
                self._drain(timeout)
            session = self._live_session()
            try:
                session.send(self._argv(cmd), cmd.stdin, direct=output_direct(cmd.argv))
            except SessionLost as e:
                self._lost(session, e, cmd.display(), timeout)
            self.pending.append(cmd)

    def settle(self) -> None:
        with self.lock:
            self._drain()
        super().settle()

    def put(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        res = self.run(_put_cmd(path, data, mode), timeout=300)
        if not res.ok:
            raise TransportError(f"{self.name}: cannot write {path}: {res.stderr.strip()}")

    def put_later(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        self.later(_put_cmd(path, data, mode), timeout=300)

    def get(self, path: str) -> bytes:
        # Through the session (base64: its output is text), so a stale master is replaced
        # here too.
        res = self.run(Cmd.of("sh", "-c", 'base64 < "$1"', "goship-get", path), timeout=120)
        if not res.ok:
            raise TransportError(f"{self.name}: cannot read {path}: {res.stderr.strip()}")
        return base64.b64decode(res.stdout)

    def stream_argv(self, cmd: Cmd) -> list[str]:
        return [*self.base_argv(), "--", self.host, self._remote(cmd.full_argv())]

    def close(self, *, wait: bool = True) -> None:
        """End this process's remote shell, or keep it for the next goship command when it
        is idle (park.py). The master stays for the next goship command (and for any other
        goship using it right now). Answers owed by `later` commands are read first; their
        failures are for `settle` before this."""
        with self.lock:
            if self.pending:
                with contextlib.suppress(TransportError, TimeoutError):
                    self._drain(15)
            if self.session is not None:
                if not self._keep(self.session):
                    self.session.close(wait=wait)
                self.session = None

    def _keep(self, s: Session) -> bool:
        key = self._keep_key() if s.idle() and not self.pending else None
        if key is None or not park.keep(control_dir(), key, s.proc.pid, s.marker, s.fds()):
            return False
        s.release()
        return True


def _put_cmd(path: str, data: bytes, mode: int) -> Cmd:
    return Cmd.of("sh", "-c", PUT_SCRIPT, "goship-put", path, f"{mode:o}").with_stdin(data)
