"""canary.state = "redis": the routing of a canary (the same body the control socket takes)
lives in one Redis hash per app and environment, written atomically with a version number.
Every host's nginx polls it from a Lua timer into its shared dict (templates/render/
nginx.site.conf.j2); goship also writes a file on each host with the last routing and how
to reach Redis, which nginx reads when it (re)starts.

The pure parts (URL, key, payload, the host file, the poll state) are here and tested as
data; the side effects go through Redis (the `redis` library) and the host's transport."""

from __future__ import annotations

import re
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

KEY_PREFIX = "goship:canary"
POLL_SECONDS = 1.0  # the Lua timer's period (also in the template)
# The host-side file nginx reads at start (0640, group of nginx's workers: it holds the
# Redis password when there is one).
HOST_FILE = "canary-redis.conf"
MARKER = "goship canary.state = redis"  # in the rendered site when the poller is there

HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Version and body in one script: a poller never reads a version without its body. The
# version is the writer's clock in ms, or one more than the last: a Redis that lost its
# data (restarted without persistence) never hands out a version hosts already applied.
WRITE_SCRIPT = """
local old = tonumber(redis.call('HGET', KEYS[1], 'version') or '0') or 0
local v = math.max(old + 1, tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'version', v, 'body', ARGV[1])
return v
"""


@dataclass(frozen=True)
class RedisURL:
    host: str
    port: int = 6379
    db: int = 0
    username: str = ""
    password: str = ""

    def display(self) -> str:
        """The URL as a person may see it: never the password."""
        cred = ""
        if self.username or self.password:
            cred = f"{self.username}:****@" if self.password else f"{self.username}@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"redis://{cred}{host}:{self.port}/{self.db}"

    def with_password(self, password: str) -> RedisURL:
        return RedisURL(self.host, self.port, self.db, self.username, password)


def parse_url(url: str) -> RedisURL:
    """redis://[[user]:password@]host[:port][/db]; ValueError says what is wrong (never
    with the password in it)."""
    if CONTROL.search(url):
        raise ValueError("the URL has a control character (newline, tab...)")
    try:
        u = urllib.parse.urlsplit(url)
        port = u.port
    except ValueError:
        raise ValueError("expected redis://[:password@]host[:port][/db], e.g. "
                         "redis://10.0.0.5:6379/0") from None
    if u.scheme == "rediss":
        raise ValueError("TLS to Redis (rediss://) is not built yet: use redis:// on a "
                         "private network")
    if u.scheme != "redis":
        raise ValueError(f"expected a redis:// URL, found scheme {u.scheme or 'none'!r}")
    if u.query or u.fragment:
        raise ValueError("expected no query or fragment: redis://host:port/db")
    host = u.hostname or ""
    if not host:
        raise ValueError("the URL names no host: redis://host:6379/0")
    if ":" in host:
        import ipaddress

        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"host {host!r} is not an IPv6 address") from None
    elif not HOSTNAME.match(host):
        raise ValueError(f"host {host!r}: expected a host name or an address")
    path = u.path.lstrip("/")
    if path and not (path.isdigit() and int(path) < 10000):
        raise ValueError(f"database {path!r}: expected a number, e.g. /0")
    return RedisURL(host=host, port=port or 6379, db=int(path or 0),
                    username=urllib.parse.unquote(u.username or ""),
                    password=urllib.parse.unquote(u.password or ""))


# scheme://[user]:PASSWORD@ anywhere in a text
URL_PASSWORD = re.compile(r"(://[^/\s:@]*:)([^@/\s]*)(@)")


def mask_url(text: str) -> str:
    """A URL as written in goship.toml, with its password masked (for error lines)."""
    return URL_PASSWORD.sub(lambda m: m.group(1) + "****" + m.group(3), text)


def validate_url(url: str) -> str:
    """For the config model: the message names the URL with its password masked."""
    try:
        parse_url(url)
    except ValueError as e:
        raise ValueError(f"{e}, found {mask_url(url)!r}") from None
    return url


def key(app: str, env: str) -> str:
    """One hash per app and environment: fields version, body, time."""
    return f"{KEY_PREFIX}:{app}:{env}"


def host_file(url: RedisURL, redis_key: str, version: int, body: str) -> str:
    """What nginx reads at (re)start: how to reach Redis, and the last routing goship wrote
    (applied until Redis answers). key=urlencoded-value lines, like the control socket."""
    fields = {"r.host": url.host, "r.port": str(url.port), "r.db": str(url.db),
              "r.user": url.username, "r.password": url.password, "r.key": redis_key,
              "c.version": str(version), "c.body": body}
    return "".join(f"{k}={urllib.parse.quote(v, safe='')}\n" for k, v in fields.items())


@dataclass(frozen=True)
class PollState:
    """What one host's nginx says about its polls (GET /canary-redis on the control
    socket)."""

    version: str | None
    ok_age: float | None  # seconds since the last successful poll
    error: str | None
    error_age: float | None
    weight_units: int | None

    @property
    def reachable(self) -> bool:
        # an error newer than the last answer: unreachable (an answer with a note, e.g. a
        # missing key, records both at once)
        return self.ok_age is not None and (self.error is None or self.error_age is None
                                            or self.ok_age <= self.error_age)

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "reachable": self.reachable,
                "last_ok_seconds": self.ok_age, "error": self.error,
                "error_seconds": self.error_age,
                "weight": None if self.weight_units is None else self.weight_units / 100}

    def line(self) -> str:
        keep = f"version {self.version or '-'}"
        if self.weight_units is not None:
            keep += f", weight {self.weight_units / 100:g}%"
        if self.reachable:
            note = f" ({self.error})" if self.error else ""
            return f"canary routing from Redis: {keep}, polled {self.ok_age:.1f}s ago{note}"
        if self.ok_age is None and self.version is None and \
                (self.error or "").endswith("(goship canary start writes it)"):
            return f"canary routing from Redis: not started on this host yet ({self.error})"
        since = "never reached" if self.ok_age is None else \
            f"last reached {self.ok_age:.0f}s ago"
        return (f"canary routing: Redis UNREACHABLE ({self.error or 'no answer'}; {since}); "
                f"keeping the last known routing ({keep})")


def parse_poll(text: str) -> PollState:
    """The control socket's answer: key=urlencoded-value lines."""
    got: dict[str, str] = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            got[k.strip()] = urllib.parse.unquote(v)
    now = _num(got.get("now")) or time.time()

    def age(k: str) -> float | None:
        t = _num(got.get(k))
        return None if t is None else max(0.0, round(now - t, 1))

    w = _num(got.get("weight"))
    return PollState(version=got.get("version") or None, ok_age=age("ok_at"),
                     error=got.get("error") or None, error_age=age("error_at"),
                     weight_units=None if w is None else int(w))


def _num(v: str | None) -> float | None:
    try:
        return None if v is None or v == "" else float(v)
    except ValueError:
        return None


def mask(text: str, url: RedisURL) -> str:
    """A message from the library or Redis, with the password out of it."""
    if url.password:
        text = text.replace(url.password, "****")
        quoted = urllib.parse.quote(url.password, safe="")
        if quoted != url.password:
            text = text.replace(quoted, "****")
    return text
