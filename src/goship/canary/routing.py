"""The routing rules of a canary and the decision for one request, in Python. nginx runs
the same decision in Lua (templates/render/nginx.site.conf.j2); `goship canary explain`
uses this one, and a test checks that both agree.

Precedence: the forced-track header and the user's header/cookie rules > an assignment
cookie naming the current release, track and weight > the allowlist > the weight, by a
stable hash of the client's id > stable."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
import zlib
from dataclasses import dataclass, field
from typing import Any

FORCE_HEADER = "X-Goship-Track"
ASSIGN_COOKIE = "goship_track"
ID_COOKIE = "goship_id"
BUCKETS = 10000


@dataclass(frozen=True)
class Rule:
    kind: str  # header | cookie
    name: str
    mode: str  # exact | regex
    value: str

    def encode(self) -> str:
        return f"{self.kind}\t{self.name}\t{self.mode}\t{self.value}\n"


@dataclass(frozen=True)
class Rules:
    release: str
    color: str
    weight: float = 0.0  # percent of clients, 0..100
    rules: tuple[Rule, ...] = ()
    allow_ids: tuple[str, ...] = ()
    allow_cidrs: tuple[str, ...] = ()
    id_cookie: str = ""  # the service's own user-id cookie, if any
    id_header: str = ""  # or header

    def control_body(self) -> str:
        """key=urlencoded-value lines for nginx's control socket."""
        fields = {
            "c.release": self.release, "c.color": self.color,
            "c.weight": f"{weight_units(self.weight)}",
            "c.rules": "".join(r.encode() for r in self.rules),
            "c.allow_ids": "".join(f"{i}\n" for i in self.allow_ids),
            "c.allow_cidrs": "".join(f"{c}\n" for c in self.allow_cidrs),
            "c.id_cookie": self.id_cookie, "c.id_header": self.id_header,
        }
        return "".join(f"{k}={urllib.parse.quote(v, safe='')}\n" for k, v in fields.items())

    def as_dict(self) -> dict[str, object]:
        return {"release": self.release, "color": self.color, "weight": self.weight,
                "rules": [r.__dict__ for r in self.rules], "allow_ids": list(self.allow_ids),
                "allow_cidrs": list(self.allow_cidrs), "id_cookie": self.id_cookie,
                "id_header": self.id_header}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Rules:
        return cls(release=str(d["release"]), color=str(d["color"]),
                   weight=float(d.get("weight", 0)),
                   rules=tuple(Rule(**r) for r in d.get("rules", [])),
                   allow_ids=tuple(d.get("allow_ids", [])),
                   allow_cidrs=tuple(d.get("allow_cidrs", [])),
                   id_cookie=str(d.get("id_cookie", "")), id_header=str(d.get("id_header", "")))


@dataclass
class Request:
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    ip: str = "127.0.0.1"

    def header(self, name: str) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None


def bucket(release: str, client_id: str) -> int:
    """Same as Lua's ngx.crc32_long(release .. ":" .. id) % 10000."""
    return zlib.crc32(f"{release}:{client_id}".encode()) % BUCKETS


def weight_units(weight: float) -> int:
    return round(weight * BUCKETS / 100)


def decide(rules: Rules, req: Request) -> tuple[str, str]:
    """(track, the rule that decided)."""
    forced = req.header(FORCE_HEADER)
    if forced in ("canary", "stable"):
        return forced, f"forced by {FORCE_HEADER}: {forced}"
    for r in rules.rules:
        got = req.header(r.name) if r.kind == "header" else req.cookies.get(r.name)
        if got is None:
            continue
        if (r.mode == "exact" and got == r.value) or (r.mode == "regex"
                                                      and re.search(r.value, got)):
            return "canary", f"{r.kind} rule {r.name} {'=' if r.mode == 'exact' else '~'} " \
                             f"{r.value}"
    units = weight_units(rules.weight)
    assigned = req.cookies.get(ASSIGN_COOKIE)
    if assigned:
        parts = assigned.split(":")
        if len(parts) == 3 and parts[0] == rules.release and parts[1] in ("canary", "stable") \
                and parts[2] == str(units):
            return parts[1], f"assignment cookie {ASSIGN_COOKIE}={assigned}"
    user = None
    if rules.id_cookie:
        user = req.cookies.get(rules.id_cookie)
    if user is None and rules.id_header:
        user = req.header(rules.id_header)
    if user is not None and user in rules.allow_ids:
        return "canary", f"allowlist: id {user}"
    for cidr in rules.allow_cidrs:
        try:
            if ipaddress.ip_address(req.ip) in ipaddress.ip_network(cidr, strict=False):
                return "canary", f"allowlist: {req.ip} in {cidr}"
        except ValueError:
            continue
    client = user or req.cookies.get(ID_COOKIE)
    if client is None:
        return "stable" if units == 0 else "random", \
            "weight: a new client gets a random id (set as a cookie) and its bucket"
    b = bucket(rules.release, client)
    if b < units:
        return "canary", f"weight: bucket {b} < {units} of {BUCKETS} ({rules.weight:g}%)"
    return "stable", f"weight: bucket {b} >= {units} of {BUCKETS} ({rules.weight:g}%)"
