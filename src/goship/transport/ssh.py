"""SSH through the OpenSSH client, so ~/.ssh/config (aliases, User, Port, IdentityFile,
ProxyJump), the agent and known_hosts work exactly as they do for `ssh` itself. One master
connection per host (ControlMaster) carries every command of a goship run."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from goship.command import Cmd
from goship.config.validators import split_host
from goship.errors import TransportError
from goship.transport.base import PUT_SCRIPT, Result, Transport
from goship.transport.session import Session
from goship.ui import ui

DOWN_SECONDS = 30.0


@dataclass(frozen=True)
class SshOptions:
    identity_file: str | None = None
    known_hosts: str | None = None  # None: the user's own known_hosts files
    connect_timeout: int = 10
    sudo: bool = False
    extra: tuple[str, ...] = field(default_factory=tuple)


def control_dir() -> Path:
    # Short and private: unix socket paths are limited to ~100 bytes.
    d = Path(tempfile.gettempdir()) / f"goship-{os.getuid()}"
    d.mkdir(mode=0o700, exist_ok=True)
    return d


class SshTransport(Transport):
    def __init__(self, spec: str, options: SshOptions | None = None,
                 name: str | None = None) -> None:
        self.spec = spec
        self.options = options or SshOptions()
        user, host, port = split_host(spec)
        self.user, self.host, self.port = user, host, port
        self.name = name or (host if user is None else f"{user}@{host}")
        self.session: Session | None = None
        self.lock = threading.Lock()
        # After a lost connection, fail fast for a while instead of waiting out a connect
        # timeout on every later step (restoring the other hosts must not wait for this one).
        self.down: tuple[float, TransportError] | None = None

    def base_argv(self) -> list[str]:
        o = self.options
        argv = [
            "ssh",
            "-o", "BatchMode=yes",  # never prompt; an unknown host key fails, never accepted
            "-o", f"ConnectTimeout={o.connect_timeout}",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
            "-o", "ControlMaster=auto", "-o", "ControlPersist=60",
            "-o", f"ControlPath={control_dir()}/%C",
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

    def _remote(self, argv: tuple[str, ...]) -> str:
        if self.options.sudo and argv[:1] != ("sudo",):
            argv = ("sudo", "-n", "--", *argv)
        return shlex.join(argv)

    def run(self, cmd: Cmd, *, timeout: float = 120.0) -> Result:
        ui.debug(f"{self.name}: {cmd.display()}")
        with self.lock:
            if self.down is not None and time.monotonic() - self.down[0] < DOWN_SECONDS:
                raise self.down[1]
            if self.session is None or not self.session.alive():
                # With sudo, the session's shell itself runs as root.
                shell = self._remote(("sh",))
                self.session = Session([*self.base_argv(), "--", self.host, shell], self.name)
            try:
                argv = cmd.argv if self.options.sudo else cmd.full_argv()
                return self.session.run(shlex.join(argv), cmd.stdin, timeout)
            except TimeoutError:
                self.session.close()
                self.session = None
                raise TransportError(f"{self.name}: `{cmd.display()}` timed out after "
                                     f"{timeout:g}s") from None
            except TransportError as e:
                self.session = None
                if "cannot connect" in e.message:
                    self.down = (time.monotonic(), e)
                raise

    def put(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        res = self.run(Cmd.of("sh", "-c", PUT_SCRIPT, "goship-put", path, f"{mode:o}")
                       .with_stdin(data), timeout=300)
        if not res.ok:
            raise TransportError(f"{self.name}: cannot write {path}: {res.stderr.strip()}")

    def get(self, path: str) -> bytes:
        argv = [*self.base_argv(), "--", self.host, self._remote(("cat", "--", path))]
        res = subprocess.run(argv, capture_output=True, timeout=120, check=False)
        if res.returncode != 0:
            raise TransportError(f"{self.name}: cannot read {path}: "
                                 f"{res.stderr.decode(errors='replace').strip()}")
        return res.stdout

    def stream_argv(self, cmd: Cmd) -> list[str]:
        return [*self.base_argv(), "--", self.host, self._remote(cmd.full_argv())]

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
        subprocess.run([*self.base_argv(), "-O", "exit", "--", self.host],
                       capture_output=True, timeout=10, check=False)
