"""Maintenance mode: nginx answers 503 with a small page (or holds each request up to
`hold` seconds, as kamal-proxy's pause does), the health path excepted, without a reload.

The flag is one value in the site's Lua shared dict, changed through the control socket
(the one the color switch and the canary use); the same value is kept in a file beside
state.json, which nginx reads back after a restart. The value: "off", or
"on HOLD RETRY_AFTER" then a newline and the page. Its own file, not state.json: a deploy
running meanwhile rewrites state.json and would lose it; so maintenance needs no lock,
and `maintenance on`, then a deploy, then `off` is the usual order."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from goship.command import Cmd
from goship.errors import ApplyError, UsageError
from goship.render.context import maintenance_file

if TYPE_CHECKING:
    from goship.config import Environment
    from goship.deploy.host import Host

DEFAULT_MESSAGE = "We are doing some maintenance. Please try again in a few minutes."
MAX_MESSAGE = 1000  # characters: the page fits the control socket's body buffer
MAX_HOLD = 3600
DEFAULT_RETRY_AFTER = 60

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Down for maintenance</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36em;margin:15vh auto;padding:0 1em;\
color:#222;line-height:1.5}}h1{{font-size:1.6em}}</style>
</head>
<body>
<h1>Down for maintenance</h1>
<p>{message}</p>
</body>
</html>
"""


@dataclass(frozen=True)
class Mode:
    """What the flag says: on or off, and how requests are answered while on."""

    on: bool
    hold: int = 0  # seconds each request waits for `off` before its 503 (0: at once)
    retry_after: int = DEFAULT_RETRY_AFTER
    message: str = DEFAULT_MESSAGE

    def value(self) -> str:
        """The shared dict's value (and the file's)."""
        if not self.on:
            return "off"
        return f"on {self.hold} {self.retry_after}\n{page(self.message)}"

    def header(self) -> str:
        return self.value().split("\n", 1)[0]

    def describe(self) -> str:
        if not self.on:
            return "maintenance off"
        how = (f"requests held up to {self.hold}s, then 503" if self.hold
               else "503 with the maintenance page")
        return f"maintenance on ({how}, Retry-After {self.retry_after}s)"


def page(message: str) -> str:
    """The 503 page; the message is text (escaped), line breaks kept."""
    text = html.escape(message.strip(), quote=True).replace("\n", "<br>\n")
    return PAGE.format(message=text)


def mode(on: bool, message: str | None, hold: float | None,
         retry_after: int | None) -> Mode:
    """The CLI's options, validated before any host is touched (exit 2)."""
    if not on:
        if message is not None or hold is not None or retry_after is not None:
            raise UsageError("--message, --hold and --retry-after go with `maintenance on`")
        return Mode(False)
    msg = DEFAULT_MESSAGE if message is None else message
    if "\x00" in msg or not msg.strip():
        raise UsageError("--message: expected some text without NUL characters")
    if len(msg) > MAX_MESSAGE:
        raise UsageError(f"--message: {len(msg)} characters; at most {MAX_MESSAGE}")
    hold_s = 0 if hold is None else hold
    if hold_s != int(hold_s) or not 0 <= hold_s <= MAX_HOLD:
        raise UsageError(f"--hold {hold:g}: expected whole seconds, at most {MAX_HOLD}")
    retry = DEFAULT_RETRY_AFTER if retry_after is None else retry_after
    if not 1 <= retry <= 86400:
        raise UsageError(f"--retry-after {retry}: expected seconds from 1 to 86400")
    return Mode(True, int(hold_s), retry, msg)


def parse(value: str) -> Mode | None:
    """The flag's value (or its first line) as a Mode; None when nothing is set."""
    head = value.split("\n", 1)[0].strip()
    if head == "off":
        return Mode(False)
    parts = head.split()
    if len(parts) == 3 and parts[0] == "on" and parts[1].isdigit() and parts[2].isdigit():
        return Mode(True, int(parts[1]), int(parts[2]), "")
    return None


def _control(h: Host, method: str, body: str | None = None) -> tuple[int, str]:
    args = ["curl", "-s", "--max-time", "5", "--unix-socket", h.nginx.control,
            "-w", "\n%{http_code}", "-X", method,
            "http://goship/maintenance"]
    cmd = Cmd.of(*args, *(["--data-binary", "@-"] if body is not None else []))
    if body is not None:
        cmd = cmd.with_stdin(body.encode())
    res = h.t.run(cmd)
    text, _, code = res.stdout.rpartition("\n")
    if not res.ok or not code.isdigit() or code == "000":
        raise ApplyError(f"{h.name}: nginx's control socket does not answer (curl exit "
                         f"{res.code})",
                         hint="is the app deployed there and nginx running? `goship status`")
    return int(code), text.strip()


def require(h: Host) -> None:
    """The host can do it: nginx with Lua, the site deployed by a goship that knows it."""
    if not h.nginx.lua:
        raise ApplyError(f"{h.name}: maintenance mode needs nginx's Lua module (it changes "
                         f"without a reload)",
                         hint="apt-get install libnginx-mod-http-lua and keep proxy.switch "
                              "\"auto\", then deploy once")
    if h.live_color is None:
        raise ApplyError(f"{h.name}: nothing deployed there yet", hint="run `goship deploy`")


def read(h: Host) -> Mode:
    """What nginx applies now (the dict), else what the file says (nginx restarted and no
    request read it back yet), else off."""
    if h.nginx.lua and h.live_color is not None:
        try:
            code, text = _control(h, "GET")
            got = parse(text) if code == 200 else None
            if got is not None:
                return got
        except ApplyError:
            pass
    res = h.t.run(Cmd.of("cat", maintenance_file(h.paths)))
    return (parse(res.stdout) if res.ok else None) or Mode(False)


def apply(h: Host, want: Mode) -> dict[str, Any]:
    """Set the flag on one host: the file first (a restart meanwhile comes back to it),
    then nginx's dict through the control socket. No reload."""
    require(h)
    value = want.value()
    code, _ = _control(h, "GET")
    if code == 404:
        raise ApplyError(f"{h.name}: the nginx site there predates maintenance mode",
                         hint="deploy once with this goship, then retry")
    h.t.put(maintenance_file(h.paths), value.encode(), mode=0o644)
    code, text = _control(h, "PUT", value)
    if code != 200 or text != want.header():
        raise ApplyError(f"{h.name}: nginx's control socket refused the change "
                         f"(HTTP {code}: {text[:200]})")
    h.journal({"action": f"maintenance {'on' if want.on else 'off'}",
               "hold": want.hold, "retry_after": want.retry_after} if want.on else
              {"action": "maintenance off"})
    return {"on": want.on, "hold": want.hold, "retry_after": want.retry_after}


def switch(env: Environment, want: Mode) -> dict[str, dict[str, Any]]:
    """Every host of the environment, in parallel: each host's result, or its error (a
    host that cannot be reached or refuses is reported; the others still change)."""
    from goship.deploy.engine import parallel
    from goship.deploy.host import open_host
    from goship.errors import GoshipError
    from goship.targets import transports

    ts = transports(env)
    out: dict[str, dict[str, Any]] = {}

    def one(t: Any) -> None:
        try:
            h = open_host(t, env)
        except GoshipError as e:
            out[t.name] = {"error": e.line()}
            return
        try:
            out[t.name] = apply(h, want)
            h.t.settle()
        except GoshipError as e:
            out[t.name] = {"error": e.line()}
        finally:
            h.t.close(wait=False)

    for t, err in parallel(ts, one, env.config.deploy.concurrency):
        if err is not None:
            out[t.name] = {"error": f"{type(err).__name__}: {err}"}
    return {t.name: out[t.name] for t in ts}
