"""Numbers per track from nginx's JSON access log on every host: what the proxy saw,
split by the track the routing chose (status, upstream response time)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from goship.canary.analysis import Arm
from goship.command import Cmd
from goship.deploy.host import Host
from goship.transport.base import Transport


@dataclass
class Tally:
    canary: Arm = field(default_factory=Arm)
    stable: Arm = field(default_factory=Arm)

    def add_line(self, line: str) -> None:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            return
        status = int(rec.get("status", 0) or 0)
        raw = str(rec.get("upstream_response_time") or rec.get("request_time") or "")
        try:
            # "0.001, 0.002" when nginx retried: the last attempt is what the client waited on
            latency: float | None = float(raw.split(",")[-1].strip())
        except ValueError:
            latency = None
        arm = self.canary if rec.get("track") == "canary" else self.stable
        arm.add(status, latency)

    def merge(self, other: Tally) -> None:
        for mine, theirs in ((self.canary, other.canary), (self.stable, other.stable)):
            mine.requests += theirs.requests
            mine.errors += theirs.errors
            mine.latencies.extend(theirs.latencies)


def log_size(h: Host) -> int:
    return log_size_at(h.t, h.nginx.access_log)


def log_size_at(t: Transport, path: str) -> int:
    res = t.run(Cmd.of("sh", "-c", 'wc -c < "$1" 2>/dev/null || echo 0', "goship-log-size",
                       path))
    text = res.stdout.strip()
    return int(text) if text.isdigit() else 0


def read_since(h: Host, offset: int) -> tuple[Tally, int]:
    """Lines appended since `offset`; returns the tally and the new offset."""
    return read_log(h.t, h.nginx.access_log, offset)


def read_log(t: Transport, path: str, offset: int) -> tuple[Tally, int]:
    res = t.run(Cmd.of("sh", "-c", 'tail -c +"$2" "$1" 2>/dev/null', "goship-log-read",
                       path, str(offset + 1)), timeout=60)
    data = res.stdout
    end = data.rfind("\n")
    complete = data[:end + 1] if end >= 0 else ""
    tally = Tally()
    for line in complete.splitlines():
        tally.add_line(line)
    return tally, offset + len(complete.encode())
