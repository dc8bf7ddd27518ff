"""Turn an environment's target (local, hosts, lab) into transports."""

from __future__ import annotations

import os
from pathlib import Path

from goship.config import Environment
from goship.transport import LocalTransport, SshOptions, SshTransport, Transport


def transports(env: Environment) -> list[Transport]:
    t = env.target
    if t.kind == "local":
        return [LocalTransport("local")]
    if t.kind == "lab":
        from goship.lab import hosts as lab_hosts

        return lab_hosts.transports(t.lab or 0)
    identity = str(Path(os.path.expanduser(t.identity_file))) if t.identity_file else None
    out: list[Transport] = []
    for spec in t.hosts or []:
        user = spec.split("@", 1)[0] if "@" in spec else None
        sudo = t.sudo if t.sudo is not None else (user is not None and user != "root")
        out.append(SshTransport(spec, SshOptions(identity_file=identity, sudo=sudo)))
    return out
