"""SSH through the OpenSSH client, so ~/.ssh/config (aliases, User, Port, IdentityFile,
ProxyJump), the agent and known_hosts work exactly as they do for `ssh` itself. One master
connection per host (ControlMaster) carries every command of a goship run."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from goship.command import Cmd
from goship.config.validators import split_host
from goship.errors import TransportError
from goship.transport.base import PUT_SCRIPT, Result, Transport
from goship.ui import ui

CONNECT_ERRORS = ("ssh:", "Connection ", "Permission denied", "Host key verification failed",
                  "kex_exchange_identification", "Could not resolve", "No route to host",
                  "Connection timed out", "Connection refused", "Connection closed")


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

    def _ssh(self, remote: str, stdin: bytes | None, timeout: float, shown: str) -> Result:
        # "--" ends ssh's options; the host was validated never to start with "-" anyway.
        argv = [*self.base_argv(), "--", self.host, remote]
        try:
            res = subprocess.run(argv, input=stdin if stdin is not None else b"",
                                 capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise TransportError(f"{self.name}: `{shown}` timed out after {timeout:g}s") from None
        except FileNotFoundError:
            raise TransportError("the ssh client is not installed",
                                 hint="install openssh-client") from None
        out = Result(res.returncode, res.stdout.decode(errors="replace"),
                     res.stderr.decode(errors="replace"))
        if out.code == 255 and any(s in out.stderr for s in CONNECT_ERRORS):
            reason = " ".join(out.stderr.strip().splitlines()[-1:]) or "connection failed"
            raise TransportError(f"{self.name}: cannot connect over ssh: {reason}")
        return out

    def run(self, cmd: Cmd, *, timeout: float = 120.0) -> Result:
        ui.debug(f"{self.name}: {cmd.display()}")
        return self._ssh(self._remote(cmd.full_argv()), cmd.stdin, timeout, cmd.display())

    def put(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        remote = self._remote(("sh", "-c", PUT_SCRIPT, "sh", path, f"{mode:o}"))
        res = self._ssh(remote, data, 300.0, f"put {path}")
        if not res.ok:
            raise TransportError(f"{self.name}: cannot write {path}: {res.stderr.strip()}")

    def get(self, path: str) -> bytes:
        argv = [*self.base_argv(), "--", self.host, self._remote(("cat", "--", path))]
        res = subprocess.run(argv, capture_output=True, timeout=120, check=False)
        if res.returncode != 0:
            raise TransportError(f"{self.name}: cannot read {path}: "
                                 f"{res.stderr.decode(errors='replace').strip()}")
        return res.stdout

    def close(self) -> None:
        subprocess.run([*self.base_argv(), "-O", "exit", "--", self.host],
                       capture_output=True, timeout=10, check=False)
