"""The release plan as data: each file of tests/data/plans is a config and a host's facts
in, and the plan (or the refusal) a user would see out. No host, no lab: milliseconds."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from goship.config.model import Config
from goship.deploy.plan import Artifact, HostView, plan_fleet, site_digest
from goship.deploy.ports import PortConflict
from goship.facts import Listener

CASES = sorted((Path(__file__).parent.parent / "data" / "plans").glob("*.json"))
BASE = '[app]\nname = "shop"\n'


def config_of(extra: str) -> Config:
    return Config.model_validate(tomllib.loads(BASE + extra))


def view_of(raw: dict[str, Any], config: Config) -> HostView:
    state = dict(raw.get("state", {}))
    if state.get("site") == "@digest":
        state["site"] = site_digest(config, {"blue": [8080], "green": [8180]},
                                    raw.get("lua", True))
    listeners = raw.get("listeners", {})
    return HostView(
        name=raw.get("name", "h1"), manager=raw.get("manager", "systemd"),
        lua=raw.get("lua", True), live_color=raw.get("live_color"),
        live_release=raw.get("live_release"), state=state,
        releases=raw.get("releases", {}),
        listeners=None if listeners is None else {
            int(p): Listener(int(p), v["process"], v["pid"], v["unit"])
            for p, v in listeners.items()},
        running={"blue": [], "green": [], **raw.get("running", {})},
        env_kept=raw.get("env_kept", []), now=raw.get("now", 1000.0),
        leftovers=raw.get("leftovers", []))


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_plan(path: Path) -> None:
    case = json.loads(path.read_text())
    config = config_of(case["config"])
    raws = case.get("hosts") or [case["host"]]
    views = [view_of(r, config) for r in raws]
    art = case["artifact"]
    artifacts = {v.name: Artifact(art["release"], art["sha256"]) if art else None
                 for v in views}
    releases = {v.name: case["release"] for v in views}

    def plan() -> Any:
        return plan_fleet(config, "prod", views, case["action"], releases, artifacts)

    if "error" in case:
        with pytest.raises(PortConflict) as e:
            plan()
        assert e.value.message == case["error"]
        return
    fleet = plan()
    got = fleet.as_dict()
    for key, want in case.get("fleet", {}).items():
        if key == "hosts":
            for hp, w in zip(got["hosts"], want, strict=True):
                assert {k: hp[k] for k in w} == w
        else:
            assert got[key] == want, key
    if "expect" in case:
        hp = got["hosts"][0]
        assert {k: hp[k] for k in case["expect"]} == case["expect"], case["about"]
    # Whatever the case, the printed plan names every host and what it serves.
    text = "\n".join(fleet.lines())
    for v in views:
        assert f"{v.name}: serves " in text
