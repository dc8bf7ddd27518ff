"""Port preflight: which ports a color binds on a host, decided from what listens there.
Pure: (config, listeners, recorded ports) in, ports and the reasons out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from goship.config import Config
from goship.deploy.layout import COLORS, PortMap, default_ports
from goship.errors import UsageError
from goship.facts import Listener

MAX_PORT = 65535


class PortConflict(UsageError):
    """An explicit port (run.ports) is held by another process: nothing was changed."""


@dataclass(frozen=True)
class PortChoice:
    ports: list[int]
    notes: list[str] = field(default_factory=list)


def own_unit(app: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(app)}-(blue|green)@(\d+)\.service$")


def is_ours(listener: Listener, app: str, color: str, recorded: PortMap) -> bool:
    """A listener this app's `color` started (a leftover or its warm standby): it is
    stopped before the color starts, so its port counts as free for that color."""
    if listener.unit:
        m = own_unit(app).match(listener.unit)
        if m:
            return m.group(1) == color
        if listener.unit.endswith(".service") or listener.unit.endswith(".scope"):
            return False  # another unit's process: never ours
    # No unit to tell (supervisord, local mode): ours when this color recorded the port.
    return listener.port in recorded.get(color, [])


def choose(config: Config, color: str, listeners: dict[int, Listener] | None,
           recorded: PortMap, reserved: dict[int, str], host: str,
           owned: PortMap | None = None) -> PortChoice:
    """The ports `color` will bind. Explicit run.ports are honoured or refused; the default
    scheme moves a held port to the next free one and says so. `owned`: the ports this app
    is known to have used (a listener there without a unit to tell is this app's)."""
    owned = recorded if owned is None else owned
    app = config.app.name
    want = default_ports(config, color)
    if listeners is None:
        return PortChoice(want, [f"{host}: `ss` is missing, ports were not checked "
                                 f"(apt-get install iproute2)"])

    def held(p: int) -> Listener | None:
        owner = listeners.get(p)
        return owner if owner is not None and not is_ours(owner, app, color, owned) \
            else None

    if config.run.ports is not None:
        for p in want:
            if p in reserved:
                raise PortConflict(f"{host}: run.ports.{color} has {p}, which "
                                   f"{reserved[p]} uses",
                                   hint="give each color and proxy.listen their own ports")
            owner = held(p)
            if owner is not None:
                raise PortConflict(f"{host}: port {p} of run.ports.{color} is held by "
                                   f"{owner.describe()}",
                                   hint="stop that process or choose other ports in "
                                        "run.ports (`goship doctor` lists held ports)")
        return PortChoice(want)

    blocked = [p for p in want if p in reserved or held(p) is not None]
    if not blocked:
        return PortChoice(want)
    # Prefer what this color used last time (still free), then scan upward.
    chosen: list[int] = []
    taken = set(reserved)
    candidates = [p for p in recorded.get(color, []) if p not in want] + \
        list(range(want[0], MAX_PORT + 1))
    for p in [*want, *candidates]:
        if len(chosen) == len(want):
            break
        if p in taken or p in chosen or held(p) is not None:
            continue
        chosen.append(p)
    if len(chosen) < len(want):
        raise PortConflict(f"{host}: no free ports for {color}", hint="free some ports")
    notes = []
    for p in blocked:
        owner = held(p)
        why = f"held by {owner.describe()}" if owner else f"used by {reserved[p]}"
        notes.append(f"{host}: {p} is {why}; {color} uses {_moved(want, chosen)}")
    return PortChoice(sorted(chosen), notes[:1] + ([f"{host}: {len(notes) - 1} more "
                                                    f"port(s) moved"] if len(notes) > 1
                                                   else []))


def _moved(want: list[int], chosen: list[int]) -> str:
    fresh = [p for p in chosen if p not in want]
    return ", ".join(str(p) for p in sorted(fresh)) or ", ".join(str(p) for p in chosen)


def recorded_ports(state: dict[str, object], config: Config) -> PortMap:
    """The ports the host's state says each color used (the default scheme where the
    state has none: hosts deployed before ports were recorded)."""
    raw = state.get("ports")
    out: PortMap = {}
    for c in COLORS:
        got = raw.get(c) if isinstance(raw, dict) else None
        if isinstance(got, list) and got and all(isinstance(p, int) for p in got):
            out[c] = [int(p) for p in got]
        else:
            out[c] = default_ports(config, c)
    return out


def held_in_range(config: Config, listeners: dict[int, Listener] | None,
                  recorded: PortMap) -> list[str]:
    """For doctor: ports of the app's range held by other processes."""
    if listeners is None:
        return []
    lines = []
    for c in COLORS:
        for p in default_ports(config, c):
            owner = listeners.get(p)
            if owner is not None and not is_ours(owner, config.app.name, c, recorded) \
                    and not is_ours(owner, config.app.name, "blue" if c == "green" else
                                    "green", recorded):
                lines.append(f"{p} ({c}) is held by {owner.describe()}")
    return lines
