"""Names and addresses the lab uses. Only these are ever touched."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAB_DIR = Path(os.environ.get("GOSHIP_LAB_DIR", "/run/goship-lab"))
BRIDGE = "gslab0"
NET = "10.78.0"
BRIDGE_ADDR = f"{NET}.1"
MAX_HOSTS = 20


@dataclass(frozen=True)
class HostLayout:
    index: int

    @property
    def name(self) -> str:
        return f"h{self.index}"

    @property
    def addr(self) -> str:
        return f"{NET}.{10 + self.index}"

    @property
    def netns(self) -> str:
        return f"goship-lab-{self.name}"

    @property
    def veth(self) -> str:
        return f"gsl-{self.name}"  # interface names are limited to 15 bytes

    @property
    def dir(self) -> Path:
        return LAB_DIR / self.name

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def console(self) -> Path:
        return LAB_DIR / f"{self.name}.console.log"


def key_path() -> Path:
    return LAB_DIR / "id_ed25519"


def known_hosts_path() -> Path:
    return LAB_DIR / "known_hosts"


def boot_notes_path() -> Path:
    """Units that failed at a host's boot (restarted once): `goship lab status` shows them."""
    return LAB_DIR / "boot-notes.log"


def state_path() -> Path:
    return LAB_DIR / "state.json"


def parse_host(name: str) -> HostLayout:
    from goship.errors import UsageError

    if not (name.startswith("h") and name[1:].isdigit() and 1 <= int(name[1:]) <= MAX_HOSTS):
        raise UsageError(f"{name!r} is not a lab host", hint=f"use h1 .. h{MAX_HOSTS}")
    return HostLayout(int(name[1:]))


def read_state() -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(state_path().read_text())
        return data
    except (FileNotFoundError, json.JSONDecodeError):
        return {"hosts": []}


def write_state(state: dict[str, Any]) -> None:
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    tmp = state_path().with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(state_path())
