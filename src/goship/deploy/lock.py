"""The deploy lock: one per app and environment on every host (APP/.lock, taken and broken
by scripts.LOCK under a flock). It records its owner (who, host, pid, start, command) and a
heartbeat (the owner file's mtime); without a heartbeat for deploy.lock_ttl it has expired.
A lock whose holder ran on this machine and whose process is gone is broken at once."""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from goship.command import Cmd
from goship.deploy import scripts
from goship.errors import ApplyError, ExitCode, GoshipError, TransportError
from goship.ui import ui

if TYPE_CHECKING:
    from goship.deploy.host import Host

HELD = 3  # the lock script's exit code when someone else holds the lock


class LockHeld(ApplyError):
    exit_code = ExitCode.LOCK_HELD


class HostChanged(ApplyError):
    """Another release wrote the host's state between goship's reading it and taking the
    lock: the plan was made from what is no longer there."""


def stamp_of(lines: list[str]) -> str | None:
    """The `state` line the lock script printed: when the host's state was last written
    (None: no state there)."""
    for line in lines:
        if line.startswith("state "):
            try:
                got = json.loads("{" + line.removeprefix("state ").strip().rstrip(",") + "}")
            except ValueError:
                return line
            return str(got.get("updated"))
    return None


class Lock:
    """A lock per app and environment on every host: owner, pid, start time, heartbeat
    (the owner file's mtime). Expired after deploy.lock_ttl without a heartbeat."""

    def __init__(self, hosts: list[Host], command: str, force: bool) -> None:
        from goship.deploy.host import now, who

        self.hosts = hosts
        self.token = secrets.token_hex(8)
        self.owner = json.dumps({"token": self.token, "who": who(),
                                 "host": socket.gethostname(), "pid": os.getpid(),
                                 "started": now(), "command": command})
        self.force = force
        self.held: list[Host] = []
        self.notes: list[str] = []

    def _take(self, h: Host, dead: str = "") -> tuple[int, list[str]]:
        ttl = h.config.deploy.lock_ttl
        res = h.t.run(Cmd.of("sh", "-c", scripts.LOCK, "goship-lock", h.paths.root, self.owner,
                             f"{ttl:g}", "1" if self.force else "0", dead, h.paths.state))
        if res.code not in (0, HELD):
            detail = (res.stderr or res.stdout).strip() or f"exit {res.code}"
            raise ApplyError(f"{h.name}: cannot take the deploy lock: {detail}")
        return res.code, res.stdout.strip().splitlines()

    def acquire(self) -> None:
        from goship.deploy.pool import borrow

        # Every host's first attempt at once (one round trip for the fleet, not one per
        # host); breaking a dead holder's lock and refusing go host by host after.
        with borrow(len(self.hosts), 32) as pool:
            futures = [pool.submit(self._take, h) for h in self.hosts]
        tries: list[tuple[int, list[str]] | BaseException] = [
            f.exception() or f.result() for f in futures]
        self.held = [h for h, r in zip(self.hosts, tries, strict=True)
                     if not isinstance(r, BaseException) and r[0] == 0]
        try:
            for r in tries:
                if isinstance(r, BaseException):
                    raise r
            for h, r in zip(self.hosts, tries, strict=True):
                assert not isinstance(r, BaseException)  # noqa: S101 (raised above)
                code, lines = r
                if code == HELD:
                    owner = owner_of(lines)
                    if dead_here(owner):
                        code, lines = self._take(h, dead=str(owner.get("token")))
                        if code == 0 and lines[:1] == ["dead"]:
                            self.notes.append(
                                f"{h.name}: broke the deploy lock of {describe(owner)}: it "
                                "ran on this machine and its process is gone")
                    if code == HELD:
                        holder = _holder("\n".join(lines))
                        raise LockHeld(f"{h.name}: another goship holds the deploy lock "
                                       f"({holder})",
                                       hint="wait for it (--wait), or pass --force if it is "
                                            "gone")
                    self.held.append(h)
                first = lines[0] if lines else ""
                if first.startswith("expired"):
                    self.notes.append(f"{h.name}: took over an expired lock "
                                      f"(no heartbeat for {first.split()[1]}s)")
                elif first == "broken":
                    self.notes.append(f"{h.name}: broke the lock (--force)")
                if not h.state_read:  # a plan that read no state (remove): nothing to confirm
                    continue
                read = h.state.get("updated")
                now = stamp_of(lines)
                if now != (None if read is None else str(read)):
                    raise HostChanged(
                        f"{h.name}: another release wrote the host's state after goship read "
                        f"it (at {read or 'no state'}, now {now or 'no state'}); nothing was "
                        "changed", hint="run the command again: it plans from what the hosts "
                                        "hold now")
                h.facts_confirmed()
        except BaseException:
            self.release()
            raise

    def heartbeat(self) -> None:
        for h in self.held:
            try:
                h.t.run(Cmd.of("sh", "-c", scripts.HEARTBEAT, "goship-heartbeat", h.paths.root,
                               self.token), timeout=10)
            except GoshipError:
                continue

    def release(self) -> None:
        for h in self.held:
            try:
                # Its answer is read when the host's connection closes.
                h.t.later(Cmd.of("sh", "-c", scripts.UNLOCK, "goship-unlock", h.paths.root,
                                 self.token), timeout=15)
            except TransportError:
                continue
        self.held = []


def acquire_waiting(acquire: Callable[[], None], wait: bool,
                    patience: float = 600.0) -> None:
    """`acquire()`; with --wait, again every 2 s while another goship holds the lock (each
    time said), up to `patience` seconds. The hosts' lock and a cluster's Lease alike."""
    deadline = time.monotonic() + patience
    while True:
        try:
            acquire()
            return
        except LockHeld as e:
            if not wait or time.monotonic() > deadline:
                raise
            ui.info(f"waiting: {e.message}")
            time.sleep(2)


def owner_of(lines: list[str]) -> dict[str, Any]:
    """The owner JSON the lock script prints after `held AGE`, or {}."""
    try:
        owner = json.loads(lines[1])
    except (IndexError, json.JSONDecodeError):
        return {}
    return owner if isinstance(owner, dict) else {}


def dead_here(owner: dict[str, Any], hostname: str | None = None) -> bool:
    """Whether the holder ran on this machine and its process no longer exists."""
    here = hostname or socket.gethostname()
    host = owner.get("host") or str(owner.get("who", "")).rpartition("@")[2]
    pid = owner.get("pid")
    if host != here or not isinstance(pid, int) or pid <= 0 or not owner.get("token"):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def describe(owner: dict[str, Any]) -> str:
    return (f"{owner.get('who')} pid {owner.get('pid')}, `{owner.get('command')}` since "
            f"{owner.get('started')}")


def _holder(text: str) -> str:
    lines = text.strip().splitlines()
    age = lines[0].split()[1] if lines and lines[0].startswith("held") else "?"
    owner = owner_of(lines)
    if owner:
        return f"{describe(owner)}, heartbeat {age}s ago"
    return f"heartbeat {age}s ago"
