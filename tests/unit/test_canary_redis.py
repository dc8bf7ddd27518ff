"""canary.state = "redis", the pure parts as data: the URL, its masking, the key, the host
file, what the control socket says about the polls, the config and its errors."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import pytest

from goship.canary import redis_state as rs
from goship.canary.routing import Rule, Rules
from goship.config import parse
from goship.config.show import effective
from goship.errors import ConfigErrors

PASSWORD = "p@ss:w/rd secret"
QUOTED = urllib.parse.quote(PASSWORD, safe="")


@pytest.mark.parametrize(("url", "want"), [
    ("redis://10.0.0.5", rs.RedisURL("10.0.0.5")),
    ("redis://10.0.0.5:6380/2", rs.RedisURL("10.0.0.5", 6380, 2)),
    ("redis://cache.internal:6379/0", rs.RedisURL("cache.internal")),
    (f"redis://:{QUOTED}@cache:6379/0", rs.RedisURL("cache", password=PASSWORD)),
    ("redis://app:pw@cache/1", rs.RedisURL("cache", db=1, username="app", password="pw")),
    ("redis://[fd00::5]:6379/0", rs.RedisURL("fd00::5")),
])
def test_urls_that_parse(url: str, want: rs.RedisURL) -> None:
    assert rs.parse_url(url) == want


@pytest.mark.parametrize(("url", "says"), [
    ("http://cache:6379/0", "expected a redis:// URL"),
    ("rediss://cache:6379/0", "TLS to Redis"),
    ("redis://:6379/0", "names no host"),
    ("redis://cache:99999/0", "expected redis://"),
    ("redis://cache:6379/zero", "database 'zero'"),
    ("redis://cache:6379/0?db=1", "no query"),
    ("redis://ca$he:6379/0", "expected a host name"),
    ("redis://cache;rm -rf /:6379/0", "expected"),
    ("redis://cache:6379/0\nX", "control character"),
    ("redis://[fd00::zz]:6379/0", "expected"),
])
def test_urls_refused_with_the_reason(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        rs.parse_url(url)


def test_a_refused_url_never_shows_its_password() -> None:
    with pytest.raises(ValueError, match="found") as e:
        rs.validate_url(f"redis://:{QUOTED}@cache:6379/x")
    assert PASSWORD not in str(e.value)
    assert QUOTED not in str(e.value)
    assert "redis://:****@cache:6379/x" in str(e.value)


def test_display_and_mask_never_show_the_password() -> None:
    url = rs.RedisURL("cache", 6380, 1, password=PASSWORD)
    assert url.display() == "redis://:****@cache:6380/1"
    assert rs.RedisURL("cache", username="app", password="pw").display() == \
        "redis://app:****@cache:6379/0"
    assert rs.RedisURL("fd00::5").display() == "redis://[fd00::5]:6379/0"
    assert rs.mask(f"AUTH failed for {PASSWORD} / {QUOTED}", url) == \
        "AUTH failed for **** / ****"


def test_one_key_per_app_and_environment() -> None:
    assert rs.key("shop", "production") == "goship:canary:shop:production"
    assert rs.key("shop", "staging") != rs.key("shop", "production")
    assert rs.key("cart", "production") != rs.key("shop", "production")


def test_host_file_holds_the_endpoint_and_the_control_body() -> None:
    rules = Rules(release="r2", color="green", weight=25.0,
                  rules=(Rule("header", "X-Beta", "exact", "1\n2"),))
    url = rs.RedisURL("cache", 6380, 3, password=PASSWORD)
    text = rs.host_file(url, "goship:canary:shop:prod", 17, rules.control_body())
    lines = dict(line.split("=", 1) for line in text.splitlines())
    got = {k: urllib.parse.unquote(v) for k, v in lines.items()}
    assert got == {"r.host": "cache", "r.port": "6380", "r.db": "3", "r.user": "",
                   "r.password": PASSWORD, "r.key": "goship:canary:shop:prod",
                   "c.version": "17", "c.body": rules.control_body()}
    # one value per line whatever the rules hold (nginx's Lua reads it line by line)
    assert len(text.splitlines()) == 8
    assert rs.host_file(url, "k", 18, "").endswith("c.version=18\nc.body=\n")


@pytest.mark.parametrize(("answer", "want"), [
    # polled 0.5s ago, never failed
    ("now=100.0\nversion=1700000000001\nok_at=99.5\nweight=2500",
     {"version": "1700000000001", "reachable": True, "last_ok_seconds": 0.5, "error": None,
      "error_seconds": None, "weight": 25.0}),
    # failing for 12s: the last answer is older than the error
    ("now=100.0\nversion=7\nok_at=88.0\nerror=connect%3A%20connection%20refused\n"
     "error_at=99.8\nweight=5000",
     {"version": "7", "reachable": False, "last_ok_seconds": 12.0,
      "error": "connect: connection refused", "error_seconds": 0.2, "weight": 50.0}),
    # answered, with a note (the key is gone): both at the same instant
    ("now=100.0\nversion=7\nok_at=99.0\nerror=key%20k%20is%20not%20in%20Redis\n"
     "error_at=99.0",
     {"version": "7", "reachable": True, "last_ok_seconds": 1.0,
      "error": "key k is not in Redis", "error_seconds": 1.0, "weight": None}),
    # nginx just restarted with no host file: never reached
    ("now=5\nerror=no%20file\nerror_at=5",
     {"version": None, "reachable": False, "last_ok_seconds": None, "error": "no file",
      "error_seconds": 0.0, "weight": None}),
])
def test_poll_state_from_the_control_socket(answer: str, want: dict[str, Any]) -> None:
    assert rs.parse_poll(answer).as_dict() == want


def test_status_lines() -> None:
    ok = rs.parse_poll("now=10\nversion=3\nok_at=9.6\nweight=1000")
    assert ok.line() == "canary routing from Redis: version 3, weight 10%, polled 0.4s ago"
    down = rs.parse_poll("now=100\nversion=3\nok_at=70\nerror=connect%3A%20timeout\n"
                         "error_at=99.5\nweight=1000")
    fresh = rs.parse_poll("now=5\nerror=no%20%2Fsrv%2Fshop%2Fcanary-redis.conf%20yet%20"
                          "(goship%20canary%20start%20writes%20it)\nerror_at=5")
    assert fresh.line() == ("canary routing from Redis: not started on this host yet (no "
                            "/srv/shop/canary-redis.conf yet (goship canary start writes it))")
    assert down.line() == ("canary routing: Redis UNREACHABLE (connect: timeout; last reached "
                           "30s ago); keeping the last known routing (version 3, weight 10%)")


BASE: dict[str, Any] = {"app": {"name": "shop"}}


def test_default_is_the_per_host_push() -> None:
    assert parse(BASE).base.canary.state == "push"


def test_redis_state_needs_a_url() -> None:
    with pytest.raises(ConfigErrors) as e:
        parse({**BASE, "canary": {"state": "redis"}}, file="goship.toml")
    assert 'canary.redis = "redis://host:6379/0"' in e.value.errors[0].line()


def test_a_bad_url_is_one_line_without_the_password() -> None:
    with pytest.raises(ConfigErrors) as e:
        parse({**BASE, "canary": {"state": "redis", "redis": f"redis://:{QUOTED}@h:6379/db"}},
              file="goship.toml")
    line = e.value.errors[0].line()
    assert line.startswith("goship.toml: canary.redis: database 'db'")
    assert QUOTED not in line
    assert PASSWORD not in line


def test_config_show_masks_the_password() -> None:
    project = parse({**BASE, "canary": {"state": "redis",
                                        "redis": f"redis://:{QUOTED}@cache:6379/0"}})
    shown = effective(project, None)
    assert shown["canary"]["redis"] == "redis://:****@cache:6379/0"
    assert QUOTED not in str(shown)


def test_password_variable_name_is_validated() -> None:
    with pytest.raises(ConfigErrors) as e:
        parse({**BASE, "canary": {"state": "redis", "redis": "redis://cache",
                                  "redis_password_var": "X; rm"}}, file="goship.toml")
    assert "canary.redis_password_var" in e.value.errors[0].line()
