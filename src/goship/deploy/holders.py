"""Who holds a port: the process a failed start collided with, named in the error. A pure
parser of `ss -ltnpH` output and one command that asks for the ports in question."""

from __future__ import annotations

import re

from goship.command import Cmd
from goship.facts import parse_listeners
from goship.transport.base import Transport

# Go: "listen tcp :8180: bind: address already in use" (also 0.0.0.0:8180, [::]:8180);
# nginx: "bind() to 0.0.0.0:8180 failed (98: Address already in use)".
IN_USE = re.compile(r":(\d{1,5}): bind: address already in use"
                    r"|bind\(\) to \S*:(\d{1,5}) failed \(98: address already in use\)", re.I)


def parse_ss(text: str) -> dict[int, tuple[str | None, int | None]]:
    """`ss -ltnpH` lines -> port -> (process name, pid); (None, None) when `ss` could not
    see the owner (another user's process, without root)."""
    listeners = parse_listeners(text) or {}
    return {port: (lst.process, lst.pid) for port, lst in listeners.items()}


def ports_in_use_errors(log: str) -> list[int]:
    """The ports a log says a bind found taken ("address already in use")."""
    found = {int(m.group(1) or m.group(2)) for m in IN_USE.finditer(log)}
    return sorted(p for p in found if 0 < p < 65536)


def ss_cmd(ports: list[int]) -> Cmd:
    expr = " or ".join(f"sport = :{p}" for p in ports)
    return Cmd.of("ss", "-ltnpH", f"( {expr} )")


def describe(port: int, holder: tuple[str | None, int | None]) -> str:
    name, pid = holder
    who = f"{name} (pid {pid})" if name and pid else "a process goship cannot see (not root?)"
    return f"port {port} is held by {who}"


def port_holders(t: Transport, ports: list[int], exclude: set[int] | None = None) -> list[str]:
    """One line per port of `ports` a process listens on, naming it and its pid; a holder
    whose pid is in `exclude` (the app's own instances) is not named."""
    if not ports:
        return []
    res = t.run(ss_cmd(sorted(set(ports))), timeout=15)
    if not res.ok:
        return []
    found = parse_ss(res.stdout)
    return [describe(p, found[p]) for p in sorted(set(ports))
            if p in found and (found[p][1] is None or found[p][1] not in (exclude or set()))]
