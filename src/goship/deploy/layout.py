"""Where an app lives on a host and which ports its colors use: the names every part of
deploy (and the renderers) agree on. A host's real ports are recorded in its state
(`ports` in state.json): the default scheme below is only where the port preflight
starts looking."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from goship.config import Config

COLORS = ("blue", "green")
COLOR_OFFSET = {"blue": 0, "green": 100}

PortMap = dict[str, list[int]]


def default_ports(config: Config, color: str) -> list[int]:
    """blue: base_port .. base_port+n-1; green: base_port+100 ..: the two colors never
    share a port, so the new release starts while the old one still serves. Explicit
    `run.ports` replace the scheme."""
    explicit = config.run.ports
    if explicit is not None:
        return list(explicit.blue if color == "blue" else explicit.green)
    base = config.run.base_port + COLOR_OFFSET[color]
    return [base + i for i in range(config.run.instances)]


def ports(config: Config, color: str) -> list[int]:
    """The configured ports of a color (what `goship render` shows). On a host, deploy
    uses the ports recorded in its state, which the preflight may have moved."""
    return default_ports(config, color)


def default_port_map(config: Config) -> PortMap:
    return {c: default_ports(config, c) for c in COLORS}


def other(color: str) -> str:
    return "green" if color == "blue" else "blue"


def ident(name: str) -> str:
    """An nginx/supervisord identifier from an app name."""
    return re.sub(r"[^a-z0-9_]", "_", name)


def program_name(app: str, color: str, port: int) -> str:
    return f"{ident(app)}-{color}-{port}"


def unit_name(app: str, color: str, port: int) -> str:
    return f"{app}-{color}@{port}.service"


def standby_unit(app: str, color: str) -> str:
    """The transient timer that stops a warm standby color when its window ends."""
    return f"goship-{app}-standby-{color}"


@dataclass(frozen=True)
class Paths:
    """Where an app lives on a host (design: releases, shared, current, state, journal)."""

    base: str
    app: str

    @property
    def root(self) -> str:
        return str(PurePosixPath(self.base) / self.app)

    def join(self, *parts: str) -> str:
        return str(PurePosixPath(self.root, *parts))

    @property
    def releases(self) -> str:
        return self.join("releases")

    def release(self, rid: str) -> str:
        return self.join("releases", rid)

    @property
    def shared(self) -> str:
        return self.join("shared")

    def env_file(self, color: str) -> str:
        """What a color's instances read: a copy of their release's environment."""
        return self.join("shared", f"env.{color}")

    def release_env(self, rid: str) -> str:
        """A release's environment as it was deployed: a rollback brings it back."""
        return self.join("shared", "envs", rid)

    def env_script(self, color: str) -> str:
        """supervisord's wrapper that exports a color's environment."""
        return self.join("run", f"env.{color}.sh")

    @property
    def current(self) -> str:
        return self.join("current")

    def color_link(self, color: str) -> str:
        return self.join(color)

    @property
    def state(self) -> str:
        return self.join("state.json")

    @property
    def journal(self) -> str:
        return self.join("journal.jsonl")

    @property
    def lock(self) -> str:
        return self.join(".lock")

    @property
    def incoming(self) -> str:
        return self.join("incoming")

    @property
    def logs(self) -> str:
        return self.join("logs")

    @property
    def run_dir(self) -> str:
        """goship's own nginx and supervisord (hosts without systemd, local mode)."""
        return self.join("run")

    def standby_pid(self, color: str) -> str:
        """Without systemd: the pid of the sleeper that stops a warm standby color."""
        return self.join("run", f"standby.{color}.pid")


def layout_dirs(paths: Paths, user: str | None) -> dict[str, tuple[str | None, str | None]]:
    """The app's directories: path -> (mode, owner user); None: whatever it is. `user`
    None (local mode, a non-root deployer): nothing is chowned."""
    return {paths.root: ("755", None), paths.releases: ("755", None),
            paths.incoming: ("700", None), paths.logs: (None, None),
            paths.run_dir: ("700", None),
            paths.shared: ("750" if user else None, user),
            paths.join("shared", "data"): (None, user),
            paths.join("shared", "envs"): ("700", None)}


def layout_fixes(paths: Paths, user: str | None, seen_text: str) -> list[list[str]]:
    """The commands (argv) that bring the app's directories to their modes and owners,
    given `stat -c '%a %U:%G %n'` of them (a missing one is absent): none when all are
    right, so a deploy to a host set up before costs that one stat."""
    want = layout_dirs(paths, user)
    seen: dict[str, tuple[str, str]] = {}
    for line in seen_text.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3:
            seen[parts[2]] = (parts[0], parts[1])
    out: list[list[str]] = []
    missing = [d for d in want if d not in seen]
    if missing:
        out.append(["mkdir", "-p", *missing])
    by_mode: dict[str, list[str]] = {}
    owned: list[str] = []
    for d, (mode, owner) in want.items():
        mode_now, owner_now = seen.get(d, ("", ""))
        # the last three digits: chmod with three leaves a directory's setgid bit alone
        if mode is not None and mode_now[-3:] != mode:
            by_mode.setdefault(mode, []).append(d)
        if owner is not None and owner_now != f"{owner}:{owner}":
            owned.append(d)
    if owned:
        out.append(["chown", f"{user}:{user}", *owned])
    out += [["chmod", mode, *ds] for mode, ds in by_mode.items()]
    return out
