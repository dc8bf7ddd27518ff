"""A fact init found, with where and how sure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fact:
    name: str
    value: str
    certain: bool
    where: str = ""  # "file:line", or the tool that said so

    @property
    def certainty(self) -> str:
        return "certain" if self.certain else "guess"


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


WELL_KNOWN_PORTS = {
    3000: "Grafana", 3306: "MySQL", 5432: "PostgreSQL", 6379: "Redis", 8500: "Consul",
    9090: "Prometheus", 9100: "node_exporter",
}


def well_known_clashes(base_port: int) -> list[str]:
    """goship binds base_port (blue) and base_port + 100 (green)."""
    out = []
    for port in (base_port, base_port + 100):
        if port in WELL_KNOWN_PORTS:
            out.append(f"port {port} is {WELL_KNOWN_PORTS[port]}'s well-known port; set "
                       f"run.base_port to another (goship uses base and base+100)")
    return out
