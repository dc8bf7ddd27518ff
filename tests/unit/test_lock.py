"""The deploy lock: the real lock scripts run by sh against a temporary app root, raced by
concurrent processes; and the Lock class over the local transport."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from goship.deploy import scripts
from goship.deploy.lock import HostChanged, Lock, LockHeld, dead_here
from goship.errors import ExitCode
from goship.transport import LocalTransport


def owner(token: str, **more: Any) -> str:
    return json.dumps({"token": token, "who": "ci@elsewhere", "host": "elsewhere", "pid": 1,
                       "started": "2026-01-01T00:00:00Z", "command": "goship deploy x",
                       **more})


def lock(root: Path, token: str, *, ttl: int = 60, force: bool = False,
         dead: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", scripts.LOCK, "goship-lock", str(root), owner(token),
                           str(ttl), "1" if force else "0", dead],
                          capture_output=True, text=True, check=False, timeout=60)


def stale(root: Path, token: str = "old0", age: int = 3600) -> None:  # noqa: S107
    """A lock whose heartbeat stopped `age` seconds ago."""
    (root / ".lock").mkdir(parents=True)
    f = root / ".lock" / "owner"
    f.write_text(owner(token) + "\n")
    past = time.time() - age
    os.utime(f, (past, past))


def holder(root: Path) -> str:
    return str(json.loads((root / ".lock" / "owner").read_text())["token"])


def race(root: Path, n: int, **kw: Any) -> list[tuple[str, int, str]]:
    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(lambda i: (f"t{i}", lock(root, f"t{i}", **kw)), range(n)))
    return [(tok, r.returncode, r.stdout.split("\n", 1)[0]) for tok, r in results]


@pytest.mark.parametrize("round_", range(15))
def test_two_deployers_breaking_an_expired_lock_exactly_one_wins(tmp_path: Path,
                                                                  round_: int) -> None:
    stale(tmp_path)
    results = race(tmp_path, 6)
    winners = [tok for tok, code, first in results if code == 0]
    assert len(winners) == 1, results
    assert next(first for _, code, first in results if code == 0).startswith("expired ")
    # everyone else is told it is held, by the winner, whose lock is intact
    assert all(code == 3 and first.startswith("held ") for tok, code, first in results
               if tok not in winners), results
    assert holder(tmp_path) == winners[0]


@pytest.mark.parametrize("round_", range(5))
def test_a_free_lock_goes_to_exactly_one(tmp_path: Path, round_: int) -> None:
    results = race(tmp_path / "app", 6)
    winners = [tok for tok, code, first in results if code == 0 and first == "acquired"]
    assert len(winners) == 1, results
    assert holder(tmp_path / "app") == winners[0]


def test_a_live_lock_is_held_and_names_its_owner(tmp_path: Path) -> None:
    assert lock(tmp_path, "mine").stdout.strip() == "acquired"
    r = lock(tmp_path, "other")
    assert r.returncode == 3
    first, text = r.stdout.split("\n", 1)
    assert first.split()[0] == "held"
    assert json.loads(text)["token"] == "mine"
    assert holder(tmp_path) == "mine"


def test_force_breaks_a_live_lock(tmp_path: Path) -> None:
    lock(tmp_path, "mine")
    r = lock(tmp_path, "other", force=True)
    assert (r.returncode, r.stdout.strip()) == (0, "broken")
    assert holder(tmp_path) == "other"


def test_a_dead_holder_is_broken_only_if_it_still_holds(tmp_path: Path) -> None:
    lock(tmp_path, "mine")
    # the token named dead is not the holder's: the live lock stays
    assert lock(tmp_path, "other", dead="gone1").returncode == 3
    assert holder(tmp_path) == "mine"
    r = lock(tmp_path, "other", dead="mine")
    assert (r.returncode, r.stdout.strip()) == (0, "dead")
    assert holder(tmp_path) == "other"


def test_unlock_and_heartbeat_touch_only_their_own_lock(tmp_path: Path) -> None:
    stale(tmp_path, "mine", age=600)
    before = (tmp_path / ".lock" / "owner").stat().st_mtime

    def script(text: str, token: str) -> None:
        subprocess.run(["sh", "-c", text, "x", str(tmp_path), token], check=False, timeout=60)

    script(scripts.HEARTBEAT, "other")
    assert (tmp_path / ".lock" / "owner").stat().st_mtime == before
    script(scripts.HEARTBEAT, "mine")
    assert (tmp_path / ".lock" / "owner").stat().st_mtime > before
    script(scripts.UNLOCK, "other")
    assert holder(tmp_path) == "mine"
    script(scripts.UNLOCK, "mine")
    assert not (tmp_path / ".lock").exists()


# ---- the Lock class, over the local transport ----------------------------------------
@dataclass
class FakeHost:
    """What Lock uses of a Host."""

    root: Path
    name: str = "local"
    t: LocalTransport = field(default_factory=LocalTransport)
    ttl: float = 60.0
    state: dict[str, Any] = field(default_factory=dict)  # as its facts read it
    confirmed: bool = False
    state_read: bool = True

    @property
    def paths(self) -> SimpleNamespace:
        return SimpleNamespace(root=str(self.root), state=str(self.root / "state.json"))

    def facts_confirmed(self) -> None:
        self.confirmed = True

    @property
    def config(self) -> SimpleNamespace:
        return SimpleNamespace(deploy=SimpleNamespace(lock_ttl=self.ttl))


def gone_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def held_by(root: Path, **who: Any) -> None:
    (root / ".lock").mkdir(parents=True)
    (root / ".lock" / "owner").write_text(owner("holder1", **who) + "\n")


def test_a_lock_of_a_dead_process_on_this_machine_is_broken_at_once(tmp_path: Path) -> None:
    here = socket.gethostname()
    held_by(tmp_path, host=here, who=f"ci@{here}", pid=gone_pid())
    lk = Lock([FakeHost(tmp_path)], "goship deploy x", force=False)  # type: ignore[list-item]
    lk.acquire()
    assert holder(tmp_path) == lk.token
    assert len(lk.notes) == 1
    assert "broke the deploy lock of ci@" in lk.notes[0]
    assert "it ran on this machine and its process is gone" in lk.notes[0]
    lk.release()
    assert not (tmp_path / ".lock").exists()


@pytest.mark.parametrize("where", ["live pid here", "dead pid elsewhere"])
def test_a_live_or_foreign_holder_is_respected(tmp_path: Path, where: str) -> None:
    if where == "live pid here":
        held_by(tmp_path, host=socket.gethostname(), pid=os.getpid())
    else:
        held_by(tmp_path, host="another-machine", who="ci@another-machine", pid=gone_pid())
    lk = Lock([FakeHost(tmp_path)], "goship deploy x", force=False)  # type: ignore[list-item]
    with pytest.raises(LockHeld) as info:
        lk.acquire()
    assert info.value.exit_code == ExitCode.LOCK_HELD == 4
    assert "another goship holds the deploy lock" in info.value.line()
    assert "`goship deploy x`" in info.value.line()
    assert holder(tmp_path) == "holder1"


def test_refused_on_a_later_host_releases_the_earlier_ones(tmp_path: Path) -> None:
    held_by(tmp_path / "b", host="another-machine", pid=1)
    hosts = [FakeHost(tmp_path / "a", "a"), FakeHost(tmp_path / "b", "b")]
    lk = Lock(hosts, "goship deploy x", force=False)  # type: ignore[arg-type]
    with pytest.raises(LockHeld, match=r"^b: another goship"):
        lk.acquire()
    assert not (tmp_path / "a" / ".lock").exists()


def write_state(root: Path, updated: str) -> dict[str, Any]:
    """A state file as goship writes it (indented JSON, sorted keys)."""
    state = {"app": "x", "live": {"color": "blue"}, "updated": updated}
    root.mkdir(parents=True, exist_ok=True)
    (root / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    return state


def test_the_lock_confirms_the_state_is_the_one_the_plan_was_made_from(tmp_path: Path) -> None:
    read = write_state(tmp_path / "a", "2026-11-24T10:00:00Z")
    fresh = FakeHost(tmp_path / "a", "a", state=read)
    none = FakeHost(tmp_path / "n", "n")  # no state yet, none written since
    lk = Lock([fresh, none], "goship deploy x", force=False)  # type: ignore[list-item]
    lk.acquire()
    assert fresh.confirmed
    assert none.confirmed
    lk.release()


def test_a_command_that_read_no_state_takes_the_lock_without_the_check(tmp_path: Path) -> None:
    """`goship remove` plans from the hosts' sites and units, not their state."""
    write_state(tmp_path, "t2")
    remover = FakeHost(tmp_path, state_read=False)
    lk = Lock([remover], "goship remove x", force=False)  # type: ignore[list-item]
    lk.acquire()
    assert holder(tmp_path) == lk.token
    assert not remover.confirmed
    lk.release()


@pytest.mark.parametrize("case", ["rewritten", "first written", "removed"])
def test_a_state_written_since_the_facts_refuses_and_frees_every_host(
        tmp_path: Path, case: str) -> None:
    """Another release ran between goship's reading the hosts and its taking the lock (a
    `--wait` behind it, or a race): its plan is out of date, so nothing is done."""
    ok = FakeHost(tmp_path / "a", "a", state=write_state(tmp_path / "a", "t1"))
    if case == "rewritten":
        seen = write_state(tmp_path / "b", "t1")
        write_state(tmp_path / "b", "t2")
    elif case == "first written":
        seen = {}
        write_state(tmp_path / "b", "t2")
    else:
        seen = write_state(tmp_path / "b", "t1")
        (tmp_path / "b" / "state.json").unlink()
    changed = FakeHost(tmp_path / "b", "b", state=seen)
    lk = Lock([ok, changed], "goship deploy x", force=False)  # type: ignore[list-item]
    with pytest.raises(HostChanged) as info:
        lk.acquire()
    assert info.value.line().startswith("b: another release wrote the host's state after "
                                        "goship read it")
    assert "run the command again" in info.value.line()
    assert not changed.confirmed
    assert not (tmp_path / "a" / ".lock").exists()
    assert not (tmp_path / "b" / ".lock").exists()


def test_dead_here_reads_old_owner_records_without_host() -> None:
    here = socket.gethostname()
    assert dead_here({"token": "x", "who": f"u@{here}", "pid": gone_pid()}, here)
    assert not dead_here({"token": "x", "who": "u@other", "pid": gone_pid()}, here)
    assert not dead_here({"token": "x", "who": f"u@{here}", "pid": "12"}, here)
