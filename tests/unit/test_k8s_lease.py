"""The deploy lock on a cluster (a Lease) as data: who may take it, what the refusal says,
and two goships on one fake API server that keeps resourceVersions as the real one does
(the real one is in tests/e2e/test_k8s_deploy.py)."""

from __future__ import annotations

import copy
import json
import socket
from typing import Any

import pytest

from goship.deploy.lock import LockHeld
from goship.errors import ExitCode
from goship.kube import lease

NOW = 1_795_000_000.0  # a fixed clock: parameters are built at collection time


def held(age: float, *, ttl: int = 120, host: str = "ci-runner", pid: int = 4242,
         holder: str = "deploy@ci-runner pid 4242 t") -> dict[str, Any]:
    renew = lease._micro(NOW - age)
    owner = {"token": "t", "who": f"deploy@{host}", "host": host, "pid": pid,
             "started": "2026-11-23T10:00:00Z", "command": "goship deploy prod"}
    return {"metadata": {"name": "goship-shop", "resourceVersion": "7",
                         "annotations": {lease.OWNER: json.dumps(owner)}},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": ttl,
                     "acquireTime": renew, "renewTime": renew}}


@pytest.mark.parametrize(("live", "force", "action", "note"), [
    (None, False, "take", ""),
    (held(5), False, "held", "deploy@ci-runner pid 4242, `goship deploy prod` since "
                             "2026-11-23T10:00:00Z, heartbeat 5s ago"),
    (held(5), True, "take", "broke the lock (--force)"),
    (held(300), False, "take", "took over an expired lock (no heartbeat for 300s)"),
    (held(5, holder=""), False, "take", ""),  # released by its holder
])
def test_who_may_take_the_lease(live: dict[str, Any] | None, force: bool, action: str,
                                note: str) -> None:
    d = lease.decide(live, NOW, force=force, hostname="laptop")
    assert (d.action, d.note) == (action, note)


def test_a_holder_that_ran_here_and_is_gone_is_broken_at_once() -> None:
    gone = 2**22 + 12345  # above pid_max's default: no such process
    d = lease.decide(held(5, host=socket.gethostname(), pid=gone), NOW, force=False)
    assert d.action == "take"
    assert d.note.endswith("it ran on this machine and its process is gone")


class FakeAPI:
    """Leases by name with resourceVersions: a replace of a stale version is a 409."""

    namespace = "shop"

    def __init__(self) -> None:
        self.store: dict[str, dict[str, Any]] = {}
        self.version = 0

    def lease(self, name: str) -> dict[str, Any] | None:
        found = self.store.get(name)
        return copy.deepcopy(found) if found else None

    def put_lease(self, obj: dict[str, Any]) -> bool:
        name = obj["metadata"]["name"]
        rv = obj["metadata"].get("resourceVersion")
        live = self.store.get(name)
        if (rv is None) != (live is None) or (live and live["metadata"]["resourceVersion"]
                                              != rv):
            return False  # 409: exists, or changed since it was read
        self.version += 1
        new = copy.deepcopy(obj)
        new["metadata"]["resourceVersion"] = str(self.version)
        self.store[name] = new
        return True


def lock(api: FakeAPI, command: str, force: bool = False) -> lease.LeaseLock:
    return lease.LeaseLock(api, "shop", command, 120.0, force)  # type: ignore[arg-type]


def test_a_second_goship_is_refused_until_the_first_releases() -> None:
    api = FakeAPI()
    first = lock(api, "goship deploy prod")
    first.acquire()
    second = lock(api, "goship rollback prod")
    with pytest.raises(LockHeld) as e:
        second.acquire()
    assert e.value.exit_code == ExitCode.LOCK_HELD
    assert e.value.message.startswith("deployment/shop in shop: another goship holds the "
                                      "deploy lock (")
    assert "`goship deploy prod` since" in e.value.message
    assert e.value.hint == "wait for it (--wait), or pass --force if it is gone"
    first.release()
    assert api.store["goship-shop"]["spec"]["holderIdentity"] == ""
    second.acquire()  # released: taken without a note
    assert second.notes == []
    assert json.loads(api.store["goship-shop"]["metadata"]["annotations"][lease.OWNER])[
        "command"] == "goship rollback prod"
    # --force takes it over; the one it was taken from cannot release it any more
    third = lock(api, "goship deploy prod", force=True)
    third.acquire()
    assert third.notes == ["broke the lock (--force)"]
    second.release()
    assert json.loads(api.store["goship-shop"]["metadata"]["annotations"][lease.OWNER])[
        "token"] == third.token
    third.release()


def test_a_release_that_loses_a_race_reads_again_and_still_releases() -> None:
    api = FakeAPI()
    me = lock(api, "goship deploy prod")
    me.acquire()
    real_put = api.put_lease
    bumped = []

    def racing(obj: dict[str, Any]) -> bool:
        if not bumped:  # a write lands between the release's read and its write
            bumped.append(True)
            live = api.lease("goship-shop")
            assert live is not None
            real_put(live)
        return real_put(obj)

    api.put_lease = racing  # type: ignore[method-assign]
    me.release()
    assert api.store["goship-shop"]["spec"]["holderIdentity"] == ""


def test_a_lost_race_reads_again() -> None:
    api = FakeAPI()
    other = lock(api, "goship deploy prod")
    me = lock(api, "goship deploy prod")
    real_read = api.lease
    raced = []

    def racing(name: str) -> dict[str, Any] | None:
        seen = real_read(name)
        if seen is None and not raced:  # the other goship creates it meanwhile
            raced.append(True)
            other.acquire()
        return seen

    api.lease = racing  # type: ignore[method-assign]
    with pytest.raises(LockHeld):  # re-read after the 409: it is held
        me.acquire()
    other.release()
