"""nginx on a host: the system's (systemd hosts) or goship's own (local mode). Switching
is render, `nginx -t`, reload; a config that fails the test is never left in place."""

from __future__ import annotations

import abc
import re
import time
from pathlib import Path

from goship.command import Cmd
from goship.config import Config
from goship.deploy.layout import PortMap, default_port_map
from goship.deploy.scripts import WORKERS
from goship.deploy.services import install_file
from goship.errors import ApplyError
from goship.render import kinds
from goship.render.context import COLORS, Paths, control_socket, tls_site
from goship.transport.base import Result, Transport

HEADER = re.compile(r"\(release ([A-Za-z0-9._-]+), color (blue|green)\)")
LUA_MODULES = ("/usr/lib/nginx/modules/ndk_http_module.so",
               "/usr/lib/nginx/modules/ngx_http_lua_module.so")


# $@ = old worker pids: those still accepting (neither gone nor shutting down).
OLD_ACCEPTING = r"""
for p in "$@"; do
  c=$(tr '\0' ' ' < /proc/"$p"/cmdline 2>/dev/null) || continue
  case "$c" in ""|*"shutting down"*) ;; *) echo "$p" ;; esac
done
exit 0
"""


def _reason(output: str) -> str:
    """The line of `nginx -t` that says what is wrong (the last one only says it failed)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for line in lines:
        if "[emerg]" in line or "[error]" in line:
            return line.split("] ", 1)[-1] if "] " in line else line
    return lines[-1] if lines else "no output"


class Nginx(abc.ABC):
    site_path: str
    pid_file: str
    access_log: str
    error_log: str

    system = True

    def __init__(self, t: Transport, config: Config, paths: Paths, lua: bool) -> None:
        self.t, self.config, self.paths = t, config, paths
        self.lua = lua
        # The host's ports per color (shared with its Host and services; the plan sets them).
        self.port_map: PortMap = default_port_map(config)
        # The ports the installed site was rendered with (the host's recorded ones): a
        # switch that moves ports is still a Lua flip when the rest of the site is equal.
        self.site_ports: PortMap = default_port_map(config)
        self.control = control_socket(paths, self.system)
        # What the host's facts read (site, control answer), for the first switch once the
        # lock confirmed nothing changed since.
        self._seen: tuple[Result, Result] | None = None
        self._seen_trusted = False

    @abc.abstractmethod
    def base(self) -> list[str]:
        """nginx argv prefix for -t / -s reload."""

    @abc.abstractmethod
    def prepare(self, root: Path | None) -> None:
        """Make nginx ready to take goship's site (first deploy, setup)."""

    @abc.abstractmethod
    def reload(self) -> None: ...

    def check_tls(self) -> None:
        """With TLS, the certificate must already be on the host: checked before anything
        changes, rather than found by `nginx -t` halfway through a deploy."""
        tls = tls_site(self.config)
        if tls is None:
            return
        missing = [p for p in (tls.cert, tls.key)
                   if not self.t.run(Cmd.of("test", "-r", p)).ok]
        if missing:
            how = ("issue it with the certbot script of `goship render nginx` "
                   "(docs/render.md)" if self.config.proxy.tls.mode == "letsencrypt"
                   else "copy it there or fix proxy.tls.cert / proxy.tls.key")
            raise ApplyError(f"{self.t.name}: TLS certificate missing on the host: "
                             f"{', '.join(missing)}; {how}")

    def prepare_tls(self) -> None:
        """The ACME challenge's webroot, which the site serves over plain HTTP."""
        tls = tls_site(self.config)
        if tls is not None and self.config.proxy.tls.mode == "letsencrypt":
            self.t.check(Cmd.of("mkdir", "-p", tls.webroot))

    def saw(self, site: Result, control: Result) -> None:
        """The site and the control's answer as the host's facts read them."""
        self._seen, self._seen_trusted = (site, control), False

    def trust_seen(self) -> None:
        """The lock holder confirmed nothing changed since: the first switch uses them."""
        self._seen_trusted = self._seen is not None

    def _live_now(self) -> tuple[Result, Result]:
        """The site and the control's answer: as seen, once, when the lock confirmed them;
        else asked (two processes on the host)."""
        seen = self._seen if self._seen_trusted else None
        self._seen, self._seen_trusted = None, False
        if seen is not None:
            return seen
        site, control = self.t.run_all(self.live_cmds())
        return site, control

    def read_site(self) -> str | None:
        res = self.t.run(Cmd.of("cat", self.site_path))
        return res.stdout if res.ok else None

    def live_color(self) -> tuple[str | None, str | None]:
        """(color, release) nginx routes to now: asked of nginx itself (Lua), else read from
        the installed site. The truth, even if goship crashed before writing its state."""
        return self.live_from(*self.t.run_all(self.live_cmds()))

    def live_cmds(self) -> list[Cmd]:
        """The site and the Lua control's answer (read together: one round trip)."""
        return [Cmd.of("cat", self.site_path), self._control_cmd()]

    def live_from(self, site: Result, control: Result) -> tuple[str | None, str | None]:
        text = site.stdout if site.ok else None
        if not text:
            return None, None
        if "balancer_by_lua_block" in text:
            answer = self._answer(control)
            if answer is not None:
                return answer
        m = HEADER.search(text)
        return (m.group(2), m.group(1)) if m else (None, None)

    def _control_cmd(self, put: tuple[str, str] | None = None,
                     ports: PortMap | None = None) -> Cmd:
        args = ["curl", "-s", "--max-time", "5", "--unix-socket", self.control,
                "http://goship/live"]
        if put:
            body = f"{put[0]} {put[1]}" + "".join(
                f" {c}={','.join(str(p) for p in ports[c])}" for c in COLORS
                if ports and ports.get(c))
            args += ["-X", "PUT", "--data-binary", body]
        return Cmd.of(*args)

    def _control(self, put: tuple[str, str] | None = None,
                 ports: PortMap | None = None) -> tuple[str, str] | None:
        return self._answer(self.t.run(self._control_cmd(put, ports)))

    @staticmethod
    def _answer(res: Result) -> tuple[str, str] | None:
        parts = res.stdout.split()
        if res.ok and len(parts) == 2 and parts[0] in COLORS:
            return parts[0], parts[1]
        return None

    def workers(self) -> set[int]:
        res = self.t.run(Cmd.of("sh", "-c", WORKERS, "goship-workers", self.pid_file))
        return {int(x) for x in res.stdout.split() if x.isdigit()}

    def test(self) -> str | None:
        res = self.t.run(Cmd.of(*self.base(), "-t"))
        return None if res.ok else (res.stderr or res.stdout).strip()

    def render(self, color: str, release: str, root: Path | None,
               port_map: PortMap | None = None) -> str:
        return self.render_parts(color, release, root, port_map)[0]

    def render_parts(self, color: str, release: str, root: Path | None,
                     port_map: PortMap | None = None) -> tuple[str, dict[str, str]]:
        """The site, and a path app's other files (its locations, the shared server)."""
        text = kinds.nginx_site_conf(self.config, self.paths, color, release,
                                     access_log=self.access_log, root=root, lua=self.lua,
                                     system=self.system, port_map=port_map or self.port_map)
        site, locations = kinds.split_site(text)
        if locations is None:
            return site, {}
        return self.path_files(site, locations, root)

    def path_files(self, site: str, locations: str,
                   root: Path | None) -> tuple[str, dict[str, str]]:
        """Path apps on one listen and server names share a server block (two servers with
        the same listen and name conflict): it includes each app's locations file."""
        loc_file, server_file = kinds.system_paths_files(self.config)
        p = self.config.proxy
        include = f"{loc_file.rsplit('/', 1)[0]}/*.conf"
        return site, {loc_file: locations,
                      server_file: kinds.nginx_paths_server(p.listen, list(p.server_names),
                                                            include, root)}

    def _read_files(self, paths: list[str]) -> dict[str, str | None]:
        if not paths:
            return {}
        got = self.t.run_all([Cmd.of("cat", f) for f in paths])
        return {f: (r.stdout if r.ok else None) for f, r in zip(paths, got, strict=True)}

    def switch(self, color: str, release: str, root: Path | None) -> set[int]:
        """Route to `color`. Returns the old workers, which finish in-flight requests (none
        when Lua switched without a reload)."""
        text, extras = self.render_parts(color, release, root)
        site, control = self._live_now()
        old_text = site.stdout if site.ok else None
        old_extras = self._read_files(sorted(extras))
        if self.lua and old_text is not None:
            live = self._answer(control)
            if live is not None and \
                    self.render_parts(live[0], live[1], root, self.site_ports) == \
                    (old_text, old_extras):
                # Same config but for the color and the ports: no reload. The file gets the
                # new default so a restarted nginx comes back on the right color and ports
                # (written just before the switch, on the host, in that order).
                # Written only where they differ from what was read (no compare on the host).
                for path, body in extras.items():
                    if old_extras.get(path) != body:
                        self.t.put_later(path, body.encode(), mode=0o644)
                if text != old_text:
                    self.t.put_later(self.site_path, text.encode(), mode=0o644)
                if self._control(put=(color, release), ports=self.port_map) \
                        != (color, release):
                    raise ApplyError(f"{self.t.name}: nginx's control socket did not take "
                                     f"the switch to {color}")
                self.site_ports = {c: list(p) for c, p in self.port_map.items()}
                return set()
        old_workers = self.workers()
        if self.lua and self._control() is None:
            # A socket file nobody serves (left by a killed nginx) would fail the bind.
            self.t.run(Cmd.of("rm", "-f", self.control))
        for path, body in extras.items():
            install_file(self.t, path, body)
        install_file(self.t, self.site_path, text)
        problem = self.test()
        if problem:
            self._put_back(old_text, old_extras)
            raise ApplyError(f"{self.t.name}: nginx -t rejected the new config, the old one is "
                             f"back in place: {_reason(problem)}")
        try:
            self.reload()
            self._wait_new_workers(old_workers)
            if self.lua and self._control(put=(color, release), ports=self.port_map) \
                    != (color, release):
                # The shared dict outlives reloads: it must name the new color too.
                raise ApplyError(f"{self.t.name}: nginx's control socket did not answer "
                                 "after the reload")
        except ApplyError as e:
            self._put_back(old_text, old_extras)
            raise ApplyError(f"{e.message}; the old config is back in place "
                             f"({self._error_tail()})") from None
        self.site_ports = {c: list(p) for c, p in self.port_map.items()}
        return old_workers

    def _put_back(self, old_text: str | None,
                  old_extras: dict[str, str | None] | None = None) -> None:
        for path, body in {**(old_extras or {}), self.site_path: old_text}.items():
            if body is None:
                self.t.run(Cmd.of("rm", "-f", path))
            else:
                install_file(self.t, path, body)

    def _error_tail(self) -> str:
        res = self.t.run(Cmd.of("tail", "-n", "1", self.error_log))
        return res.stdout.strip() or "no nginx error logged"

    def _wait_new_workers(self, old: set[int], timeout: float = 10) -> None:
        """A reload is a signal: wait until workers with the new config run."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            now = self.workers()
            if now - old:
                break
            time.sleep(0.05)
        else:
            raise ApplyError(f"{self.t.name}: nginx did not start new workers after reload")
        # The old workers stop accepting once they took the master's signal ("shutting
        # down"): until then a new connection may still get the old config (a first
        # site's request answered by the default site's 404).
        while old and time.monotonic() < end:
            if not self.t.run(Cmd.of("sh", "-c", OLD_ACCEPTING, "goship-old-workers",
                                     *(str(p) for p in sorted(old)))).stdout.strip():
                return
            time.sleep(0.02)

    def drain(self, old_workers: set[int], timeout: float) -> bool:
        """Wait until the workers of the old config exited: their in-flight requests are
        done. True when drained in time."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not (self.workers() & old_workers):
                return True
            time.sleep(0.1)
        return False


class SystemNginx(Nginx):
    pid_file = "/run/nginx.pid"

    error_log = "/var/log/nginx/error.log"

    def __init__(self, t: Transport, config: Config, paths: Paths, systemd: bool,
                 lua: bool) -> None:
        super().__init__(t, config, paths, lua)
        self.systemd = systemd
        self.site_path = f"/etc/nginx/conf.d/goship-{config.app.name}.conf"
        self.access_log = f"/var/log/nginx/goship-{config.app.name}.access.log"

    def base(self) -> list[str]:
        return ["nginx"]

    def prepare(self, root: Path | None) -> None:
        if self.lua:
            run_dir = str(Path(self.control).parent)
            install_file(self.t, f"/etc/tmpfiles.d/goship-{self.config.app.name}.conf",
                         f"# goship: nginx's control socket for {self.config.app.name}\n"
                         f"d {run_dir} 0700 root root -\n")
            self.t.check(Cmd.of("mkdir", "-p", "-m", "700", run_dir))
        if not self.config.proxy.server_names:
            # Our site is the default server: a distribution's default site would collide.
            default = "/etc/nginx/sites-enabled/default"
            res = self.t.run(Cmd.of("grep", "-l", "default_server", default))
            if res.ok:
                self.t.check(Cmd.of("mv", default, self.paths.join("nginx-default-site.off")))

    def reload(self) -> None:
        if self.systemd:
            active = self.t.run(Cmd.of("systemctl", "is-active", "--quiet", "nginx")).ok
            self.t.check(Cmd.of("systemctl", "reload" if active else "start", "nginx"))
        else:
            running = self.t.run(Cmd.of("sh", "-c", 'kill -0 "$(cat "$1")"', "goship-alive",
                                        self.pid_file)).ok
            self.t.check(Cmd.of("nginx", *(["-s", "reload"] if running else [])))


class OwnNginx(Nginx):
    """nginx run by goship under the app's directory: no root, no system config touched."""

    system = False

    def __init__(self, t: Transport, config: Config, paths: Paths, lua: bool) -> None:
        super().__init__(t, config, paths, lua)
        self.conf = paths.join("run", "nginx.conf")
        self.site_path = paths.join("run", "site.conf")
        self.pid_file = paths.join("run", "nginx.pid")
        self.access_log = paths.join("logs", "access.log")
        self.error_log = paths.join("logs", "nginx.error.log")

    def base(self) -> list[str]:
        return ["nginx", "-c", self.conf, "-p", self.paths.join("run"), "-e", self.error_log]

    def path_files(self, site: str, locations: str,
                   root: Path | None) -> tuple[str, dict[str, str]]:
        # goship's own nginx serves this app alone: its server sits in the site itself.
        loc_file = self.paths.join("run", "locations.conf")
        p = self.config.proxy
        return (site + kinds.nginx_paths_server(p.listen, list(p.server_names), loc_file,
                                                root), {loc_file: locations})

    def prepare(self, root: Path | None) -> None:
        mime = "/etc/nginx/mime.types"
        if not self.t.run(Cmd.of("test", "-f", mime)).ok:
            mime = self.paths.join("run", "mime.types")
            install_file(self.t, mime, "types {\n    text/html html;\n    text/css css;\n"
                         "    application/javascript js;\n    application/json json;\n}\n")
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            self.t.check(Cmd.of("mkdir", "-p", self.paths.join("run", "nginx-tmp", d)))
        modules = list(LUA_MODULES) if self.lua else []
        install_file(self.t, self.conf, kinds.nginx_main_conf(
            self.config, self.paths, self.paths.logs, mime, modules, root))

    def running(self) -> bool:
        return self.t.run(Cmd.of("sh", "-c", 'kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null',
                                 "goship-alive", self.pid_file)).ok

    def reload(self) -> None:
        if self.running():
            self.t.check(Cmd.of(*self.base(), "-s", "reload"))
        else:
            self.t.check(Cmd.of(*self.base()))
