"""goship maintenance as data: the options validated before any host is touched, the flag's
value (the page escaped), what goes through the control socket and in which order, and the
rendered nginx parts (health path excepted, read back from the file after a restart)."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from goship.config.model import Config
from goship.deploy import maintenance as mm
from goship.deploy.layout import Paths
from goship.errors import ApplyError, UsageError
from goship.render import kinds
from goship.render.context import lua_string
from goship.transport.base import Result
from goship.transport.fake import FakeTransport

BASE = '[app]\nname = "shop"\n'


def config_of(extra: str = "") -> Config:
    return Config.model_validate(tomllib.loads(BASE + extra))


# ---- options -> the flag ------------------------------------------------------------------
MODES: list[tuple[tuple[Any, ...], str]] = [
    ((False, None, None, None), "off"),
    ((True, None, None, None), "on 0 60"),
    ((True, "Back at 10:00", 30, 120), "on 30 120"),
    ((True, "x", 0.0, None), "on 0 60"),
]


@pytest.mark.parametrize(("args", "header"), MODES)
def test_the_flag_header(args: tuple[Any, ...], header: str) -> None:
    m = mm.mode(*args)
    assert m.header() == header
    back = mm.parse(m.value())  # round trip
    assert back is not None
    assert (back.on, back.hold, back.retry_after) == (m.on, m.hold, m.retry_after)


@pytest.mark.parametrize(("args", "says"), [
    ((False, "msg", None, None), "go with `maintenance on`"),
    ((False, None, 5, None), "go with `maintenance on`"),
    ((True, "", None, None), "--message: expected some text"),
    ((True, "a\x00b", None, None), "--message: expected some text"),
    ((True, "x" * 1001, None, None), "at most 1000"),
    ((True, None, 0.5, None), "--hold 0.5: expected whole seconds"),
    ((True, None, -1, None), "--hold -1: expected whole seconds"),
    ((True, None, 3601, None), "at most 3600"),
    ((True, None, None, 0), "--retry-after 0"),
])
def test_bad_options_are_refused(args: tuple[Any, ...], says: str) -> None:
    with pytest.raises(UsageError) as e:
        mm.mode(*args)
    assert says in e.value.message


def test_the_page_escapes_the_message() -> None:
    hostile = '<script>alert("x")</script> & \'q\'\nsecond line'
    value = mm.mode(True, hostile, None, None).value()
    head, _, page = value.partition("\n")
    assert head == "on 0 60"
    assert "<script>" not in page
    assert ("<p>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;q&#x27;<br>\n"
            "second line</p>") in page
    assert page.startswith("<!doctype html>")


@pytest.mark.parametrize(("value", "want"), [
    ("off", mm.Mode(False)),
    ("off\n", mm.Mode(False)),
    ("on 5 60\n<html>", mm.Mode(True, 5, 60, "")),
    ("on 5 60", mm.Mode(True, 5, 60, "")),  # the control socket's GET: the first line
    ("unset", None),
    ("", None),
    ("on x 60", None),
])
def test_parse(value: str, want: mm.Mode | None) -> None:
    assert mm.parse(value) == want


# ---- on a host (recording transport) -----------------------------------------------------
def host(answers: dict[str, Any], *, lua: bool = True, live: str | None = "blue") -> Any:
    t = FakeTransport("h1", answers)
    nginx = SimpleNamespace(lua=lua, control="/run/goship/shop/nginx-control.sock")
    h = SimpleNamespace(t=t, name="h1", nginx=nginx, live_color=live,
                        paths=Paths("/srv", "shop"), journaled=[])
    h.journal = h.journaled.append
    return h


def socket(state: list[str], refuse: bool = False) -> Any:
    """The control socket: answers GET with the flag's first line, takes PUT's body."""
    def answer(cmd: Any) -> Result:
        if "PUT" in cmd.argv:
            if refuse:
                return Result(0, "expected: off, or on ...\n\n400", "")
            state.append(cmd.stdin.decode())
        return Result(0, f"{(state[-1] if state else 'off').split(chr(10))[0]}\n\n200", "")
    return answer


def test_on_writes_the_file_then_the_dict_without_a_reload() -> None:
    seen: list[str] = []
    h = host({"curl": socket(seen)})
    want = mm.mode(True, "Back soon", 10, None)
    assert mm.apply(h, want) == {"on": True, "hold": 10, "retry_after": 60}
    assert h.t.files["/srv/shop/maintenance"] == (want.value().encode(), 0o644)
    assert seen == [want.value()]
    shells = [c.shell() for c in h.t.calls]
    assert not any("reload" in s or "nginx -s" in s for s in shells)
    put = next(c for c in h.t.calls if "PUT" in c.argv)
    argv = shlex.split(put.shell())
    assert argv[-1] == "@-"  # the page goes on stdin, never on a command line
    assert "http://goship/maintenance" in argv
    assert h.journaled == [{"action": "maintenance on", "hold": 10, "retry_after": 60}]


def test_a_site_without_maintenance_support_is_named() -> None:
    h = host({"curl": Result(0, "<html>404</html>\n404", "")})
    with pytest.raises(ApplyError, match="predates maintenance mode"):
        mm.apply(h, mm.mode(True, None, None, None))
    assert h.t.files == {}  # nothing written


@pytest.mark.parametrize(("kw", "says"), [
    ({"lua": False}, "needs nginx's Lua module"),
    ({"live": None}, "nothing deployed there yet"),
])
def test_hosts_that_cannot_do_it_say_why(kw: dict[str, Any], says: str) -> None:
    h = host({"curl": socket([])}, **kw)
    with pytest.raises(ApplyError, match=says):
        mm.apply(h, mm.mode(True, None, None, None))
    assert h.t.calls == []


def test_a_refused_change_is_an_error() -> None:
    h = host({"curl": socket([], refuse=True)})
    with pytest.raises(ApplyError, match="refused the change"):
        mm.apply(h, mm.mode(True, None, None, None))


def test_a_dead_socket_is_an_error() -> None:
    h = host({"curl": Result(7, "\n000", "")})
    with pytest.raises(ApplyError, match="control socket does not answer"):
        mm.apply(h, mm.mode(False, None, None, None))


def test_read_falls_back_to_the_file_after_a_restart() -> None:
    h = host({"curl": Result(0, "unset\n\n200", ""),
              "cat /srv/shop/maintenance": Result(0, "on 3 90\n<html>", "")})
    assert mm.read(h) == mm.Mode(True, 3, 90, "")
    h = host({"curl": Result(0, "unset\n\n200", ""),
              "cat /srv/shop/maintenance": Result(1, "", "no such file")})
    assert mm.read(h) == mm.Mode(False)


# ---- the rendered nginx parts ------------------------------------------------------------
def site(extra: str = "", base: str = "/srv") -> str:
    return kinds.nginx_site_conf(config_of(extra), Paths(base, "shop"), "blue", "v1", lua=True)


def test_the_site_checks_the_flag_except_on_the_health_path() -> None:
    text = site('[run.health]\npath = "/api/v1/healthz"\n')
    assert 'ngx.var.uri ~= "/api/v1/healthz" then' in text
    assert 'io.open("/srv/shop/maintenance", "r")' in text
    assert "location = /maintenance {" in text
    # only with Lua: the plain site has neither
    plain = kinds.nginx_site_conf(config_of(), Paths("/srv", "shop"), "blue", "v1", lua=False)
    assert "maintenance" not in plain


def test_lua_strings_are_quoted_whatever_they_hold() -> None:
    assert lua_string("/srv/shop/maintenance") == '"/srv/shop/maintenance"'
    assert lua_string('a"b\\c\n1') == '"a\\034b\\092c\\0101"'  # 3 digits: never "\101"


def test_the_file_path_follows_the_base(tmp_path: Path) -> None:
    assert f'io.open("{tmp_path}/shop/maintenance"' in site(base=str(tmp_path))
