"""The deploy lock on a cluster: a coordination.k8s.io Lease `goship-APP` in the app's
namespace (what Kubernetes' own controllers elect leaders with). Its holder renews it while
a deploy or rollback runs; one not renewed for deploy.lock_ttl has expired. The same rules
and messages as the hosts' lock (goship.deploy.lock): --force breaks it, --wait waits, a
holder that ran on this machine and whose process is gone is broken at once. Taken and
changed with the Lease's resourceVersion: of two goships racing, one wins."""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from goship.deploy.lock import LockHeld, acquire_waiting, dead_here, describe
from goship.errors import ApplyError
from goship.ui import ui

if TYPE_CHECKING:
    from goship.kube.cluster import Cluster

OWNER = "goship.dev/owner"  # the holder's JSON: who, host, pid, started, command, token


@dataclass(frozen=True)
class Decision:
    action: Literal["take", "held"]
    note: str = ""  # said when an expired, dead or forced lease is taken over


def decide(lease: dict[str, Any] | None, now: float, *, force: bool,
           hostname: str | None = None) -> Decision:
    """Whether this goship may take the Lease as it is (None: there is none)."""
    if lease is None:
        return Decision("take")
    spec = lease.get("spec") or {}
    owner = _owner(lease)
    if not spec.get("holderIdentity"):
        return Decision("take")  # released
    age = now - _time(spec.get("renewTime") or spec.get("acquireTime"))
    ttl = float(spec.get("leaseDurationSeconds") or 0)
    if age > ttl:
        return Decision("take", f"took over an expired lock (no heartbeat for {age:.0f}s)")
    if dead_here(owner, hostname):
        return Decision("take", f"broke the deploy lock of {describe(owner)}: it ran on "
                                "this machine and its process is gone")
    if force:
        return Decision("take", "broke the lock (--force)")
    return Decision("held", f"{describe(owner)}, heartbeat {age:.0f}s ago" if owner
                    else f"heartbeat {age:.0f}s ago")


def lease_name(app: str) -> str:
    """The app's deploy lock in its namespace."""
    return f"goship-{app}"


class LeaseLock:
    def __init__(self, cluster: Cluster, app: str, command: str, ttl: float,
                 force: bool) -> None:
        from goship.deploy.host import now, who

        self.cluster, self.name, self.ttl, self.force = cluster, lease_name(app), ttl, force
        self.token = secrets.token_hex(8)
        self.owner = {"token": self.token, "who": who(), "host": socket.gethostname(),
                      "pid": os.getpid(), "started": now(), "command": command}
        self.notes: list[str] = []
        self.held = False
        self._stop = threading.Event()
        self._beater: threading.Thread | None = None

    def acquire(self, wait: bool = False) -> None:
        acquire_waiting(self._take, wait)
        self._beater = threading.Thread(target=self._beat, daemon=True)
        self._beater.start()

    def _take(self) -> None:
        for _ in range(5):  # lost races: read again and decide again
            live = self.cluster.lease(self.name)
            d = decide(live, time.time(), force=self.force)
            if d.action == "held":
                raise LockHeld(f"deployment/{self.name.removeprefix('goship-')} in "
                               f"{self.cluster.namespace}: another goship holds the deploy "
                               f"lock ({d.note})",
                               hint="wait for it (--wait), or pass --force if it is gone")
            if not self.cluster.put_lease(self._object(live)):
                continue  # another goship changed it first
            if d.note:
                self.notes.append(d.note)
            self.held = True
            return
        raise ApplyError(f"cannot take the deploy lock (lease/{self.name}): it kept changing")

    def _object(self, live: dict[str, Any] | None) -> dict[str, Any]:
        stamp = _micro(time.time())
        meta: dict[str, Any] = {"name": self.name, "namespace": self.cluster.namespace,
                                "labels": {"app.kubernetes.io/managed-by": "goship"},
                                "annotations": {OWNER: json.dumps(self.owner)}}
        spec = {"holderIdentity": f"{self.owner['who']} pid {self.owner['pid']} "
                                  f"{self.token}",
                "leaseDurationSeconds": max(1, round(self.ttl)),
                "acquireTime": stamp, "renewTime": stamp}
        if live is not None:  # replace exactly what was read, or lose the race (409)
            meta["resourceVersion"] = live["metadata"]["resourceVersion"]
            spec["leaseTransitions"] = int((live.get("spec") or {}).get(
                "leaseTransitions") or 0) + 1
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": spec}

    def _beat(self) -> None:
        while not self._stop.wait(max(2.0, self.ttl / 4)):
            try:
                live = self.cluster.lease(self.name)
                if live is None or _owner(live).get("token") != self.token:
                    return  # broken by someone with --force: theirs now
                live["spec"]["renewTime"] = _micro(time.time())
                self.cluster.put_lease(live)  # lost to a release or a --force: next beat says
            except ApplyError as e:  # the API server unreachable for a moment
                ui.debug(f"lease/{self.name}: a heartbeat missed ({e.message})")

    def release(self) -> None:
        """Empties the holder (as client-go's leader election releases) rather than
        deleting: every write carries the resourceVersion read, so a lease taken over
        meanwhile stays theirs. Never raises: the command's own outcome is what counts;
        a lease left behind expires after deploy.lock_ttl."""
        self._stop.set()
        if self._beater is not None:
            self._beater.join(timeout=15)  # no heartbeat may land after the release
        if not self.held:
            return
        self.held = False
        try:
            for _ in range(5):
                live = self.cluster.lease(self.name)
                if live is None or _owner(live).get("token") != self.token:
                    return
                live["metadata"].get("annotations", {}).pop(OWNER, None)
                live["spec"]["holderIdentity"] = ""
                if self.cluster.put_lease(live):
                    return
            ui.warn(f"lease/{self.name}: could not release the deploy lock (it kept "
                    f"changing); it expires after {self.ttl:g}s")
        except ApplyError as e:
            ui.warn(f"lease/{self.name}: could not release the deploy lock ({e.message}); "
                    f"it expires after {self.ttl:g}s")


def _owner(lease: dict[str, Any]) -> dict[str, Any]:
    try:
        owner = json.loads(((lease.get("metadata") or {}).get("annotations") or {})
                           .get(OWNER, "{}"))
    except json.JSONDecodeError:
        return {}
    return owner if isinstance(owner, dict) else {}


def _micro(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _time(value: Any) -> float:
    """A Lease's MicroTime (RFC 3339 text, as the API server writes it) as seconds."""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
