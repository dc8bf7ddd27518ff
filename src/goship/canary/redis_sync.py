"""The side effects of canary.state = "redis": write the routing to Redis (from the deploying
machine), write each host's restart file, ask each host's nginx what it applied."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from goship.canary import redis_state as rs
from goship.command import Cmd
from goship.errors import ApplyError, UsageError

if TYPE_CHECKING:
    from goship.canary.routing import Rules
    from goship.deploy.host import Host

# Installs stdin as the host file: 0640, group of nginx's running workers (they read it;
# the password may be in it), written aside then renamed (nginx never reads half a file).
INSTALL = r"""set -eu
g=$(ps -o group= --ppid "$(cat "$1" 2>/dev/null || echo 1)" 2>/dev/null | head -n1 | tr -d ' ')
umask 077
cat > "$2.tmp"
chgrp "${g:-root}" "$2.tmp" 2>/dev/null || true
chmod 640 "$2.tmp"
mv -f "$2.tmp" "$2"
"""
WAIT_SECONDS = 5.0


class RedisState:
    def __init__(self, url: rs.RedisURL, redis_key: str) -> None:
        self.url, self.key = url, redis_key

    def _client(self) -> object:
        import redis

        return redis.Redis(host=self.url.host, port=self.url.port, db=self.url.db,
                           username=self.url.username or None,
                           password=self.url.password or None, socket_timeout=2.0,
                           socket_connect_timeout=2.0)

    def _fail(self, what: str, err: Exception) -> ApplyError:
        reason = rs.mask(str(err) or type(err).__name__, self.url).splitlines()[0]
        return ApplyError(f"canary.redis {self.url.display()}: {what}: {reason}; the "
                          "previous routing stays on every host",
                          hint="start Redis (or fix canary.redis) and run the command again")

    def publish(self, rules: Rules | None) -> tuple[int, str]:
        """Writes the routing (None: no canary); returns (version, body)."""
        import redis

        body = rules.control_body() if rules is not None else ""
        client = self._client()
        try:
            version = client.eval(  # type: ignore[attr-defined]
                rs.WRITE_SCRIPT, 1, self.key, body, str(int(time.time() * 1000)))
        except redis.RedisError as e:
            raise self._fail("cannot write the canary routing", e) from None
        finally:
            client.close()  # type: ignore[attr-defined]
        return int(version), body

    def check(self) -> None:
        """Fails (one line) when Redis does not answer, before anything changes."""
        import redis

        client = self._client()
        try:
            client.ping()  # type: ignore[attr-defined]
        except redis.RedisError as e:
            raise self._fail("Redis does not answer", e) from None
        finally:
            client.close()  # type: ignore[attr-defined]

    # ---- hosts ---------------------------------------------------------------------------
    def install(self, h: Host, version: int, body: str) -> None:
        """The host's restart file, then nginx re-reads it (POST /canary-redis)."""
        path = h.paths.join(rs.HOST_FILE)
        text = rs.host_file(self.url, self.key, version, body)
        res = h.t.run(Cmd.of("sh", "-c", INSTALL, "goship-canary-redis", h.nginx.pid_file,
                             path).with_stdin(text.encode()))
        if not res.ok:
            raise ApplyError(f"{h.name}: cannot write {path} (exit {res.code})")
        poll(h, "POST")


def poll(h: Host, method: str = "GET") -> rs.PollState:
    res = h.t.run(Cmd.of("curl", "-s", "-f", "--max-time", "5", "--unix-socket",
                         h.nginx.control, "-X", method, "http://goship/canary-redis"))
    if not res.ok:
        raise ApplyError(f"{h.name}: nginx's control socket did not answer about Redis "
                         f"(curl exit {res.code}); is the site rendered with "
                         'canary.state = "redis"?')
    return rs.parse_poll(res.stdout)


def wait_applied(hosts: list[Host], version: int, limit: int,
                 timeout: float = WAIT_SECONDS) -> list[str]:
    """Hosts whose nginx has not applied `version` after `timeout` (polled every 0.2s)."""
    from goship.deploy.engine import parallel

    left = list(hosts)
    deadline = time.monotonic() + timeout
    done: set[str] = set()

    def one(h: Host) -> None:
        if poll(h).version == str(version):
            done.add(h.name)

    while left:
        parallel(left, one, limit)
        left = [h for h in left if h.name not in done]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return [h.name for h in left]


def from_config(app: str, env_name: str, url: str, password: str | None) -> RedisState:
    try:
        parsed = rs.parse_url(url)
    except ValueError as e:
        raise UsageError(f"canary.redis: {e}") from None
    if password:
        parsed = parsed.with_password(password)
    return RedisState(parsed, rs.key(app, env_name))
