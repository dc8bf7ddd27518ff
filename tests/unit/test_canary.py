"""Canary routing and analysis as data: the decision table and the statistics."""

from __future__ import annotations

import urllib.parse

import pytest

from goship.canary import analysis
from goship.canary.analysis import Arm
from goship.canary.routing import Request, Rule, Rules, bucket, decide
from goship.config.model import Canary

RULES = Rules(release="v2-abc", color="green", weight=10,
              rules=(Rule("header", "X-App-Version", "exact", "beta"),
                     Rule("header", "User-Agent", "regex", "(?i)iphone"),
                     Rule("cookie", "tester", "exact", "yes")),
              allow_ids=("u42",), allow_cidrs=("10.9.0.0/16",), id_cookie="uid")


def client_in(weight: float, want: str) -> str:
    for i in range(10000):
        cid = f"c{i}"
        b = bucket("v2-abc", cid)
        if (want == "canary") == (b < weight * 100):
            return cid
    raise AssertionError("no such client")


@pytest.mark.parametrize(("req", "track", "why"), [
    (Request(headers={"X-Goship-Track": "stable", "X-App-Version": "beta"}), "stable",
     "forced"),
    (Request(headers={"x-goship-track": "canary"}), "canary", "forced"),
    (Request(headers={"X-App-Version": "beta"}), "canary", "header rule X-App-Version"),
    (Request(headers={"X-App-Version": "beta2"}, cookies={"goship_id": client_in(10, "stable")}),
     "stable", "weight"),
    (Request(headers={"User-Agent": "Mozilla (iPhone)"}), "canary", "header rule User-Agent"),
    (Request(cookies={"tester": "yes"}), "canary", "cookie rule tester"),
    (Request(cookies={"goship_track": "v2-abc:canary:1000"}), "canary", "assignment cookie"),
    (Request(cookies={"goship_track": "v1-old:canary:1000",
                      "goship_id": client_in(10, "stable")}), "stable", "weight"),
    (Request(cookies={"goship_track": "v2-abc:canary:500",  # another weight: re-decided
                      "goship_id": client_in(10, "stable")}), "stable", "weight"),
    (Request(cookies={"uid": "u42"}), "canary", "allowlist: id u42"),
    (Request(ip="10.9.3.4"), "canary", "allowlist: 10.9.3.4 in 10.9.0.0/16"),
    (Request(cookies={"goship_id": client_in(10, "canary")}), "canary", "weight: bucket"),
    (Request(), "random", "random id"),
])
def test_decision_table(req: Request, track: str, why: str) -> None:
    got, rule = decide(RULES, req)
    assert got == track
    assert why in rule


def test_raising_the_weight_only_adds_clients() -> None:
    clients = [f"user{i}" for i in range(2000)]
    at = {w: {c for c in clients
              if decide(Rules(**{**RULES.__dict__, "weight": w, "rules": ()}),
                        Request(cookies={"goship_id": c}))[0] == "canary"}
          for w in (5, 10, 25, 50)}
    assert at[5] <= at[10] <= at[25] <= at[50]
    assert 0.07 < len(at[10]) / len(clients) < 0.13


def test_control_body_round_trips_hostile_values() -> None:
    rules = Rules(release="v2", color="blue", weight=12.5,
                  rules=(Rule("header", "X-T", "regex", "a=b\nc%d&e"),))
    body = rules.control_body()
    fields = dict(line.split("=", 1) for line in body.splitlines())
    assert fields["c.weight"] == "1250"
    assert urllib.parse.unquote(fields["c.rules"]) == "header\tX-T\tregex\ta=b\nc%d&e\n"
    assert Rules.from_dict(rules.as_dict()) == rules


TH = Canary(step_min_requests=200, step_min_seconds=0)


def arm(n: int, errors: int, latency: float = 0.002) -> Arm:
    a = Arm()
    for i in range(n):
        a.add(500 if i < errors else 200, latency)
    return a


def test_no_evidence_is_not_a_pass() -> None:
    v = analysis.analyse(arm(50, 0), arm(5000, 0), 60, TH)
    assert v.outcome == "wait"
    assert "50 of 200" in v.reason


def test_zero_errors_with_enough_requests_pass() -> None:
    v = analysis.analyse(arm(1500, 0), arm(15000, 3), 60, TH)
    assert v.outcome == "pass"
    assert v.numbers["canary"]["errors"] == 0  # type: ignore[index]


def test_zero_errors_count_as_zero_but_need_numbers() -> None:
    v = analysis.analyse(arm(250, 0), arm(2500, 0), 60, TH)
    assert v.outcome == "wait"
    assert "P(canary worse)" in v.reason


def test_a_bad_canary_fails() -> None:
    v = analysis.analyse(arm(300, 60), arm(3000, 3), 10, TH)
    assert v.outcome == "fail"
    assert "above the cap" in v.reason


def test_a_slow_canary_fails() -> None:
    v = analysis.analyse(arm(400, 0, 0.300), arm(4000, 0, 0.010), 60, TH)
    assert v.outcome == "fail"
    assert "p99" in v.reason


def test_same_data_same_answer() -> None:
    a = analysis.prob_worse(arm(500, 4), arm(5000, 20), 0.005)
    assert a == analysis.prob_worse(arm(500, 4), arm(5000, 20), 0.005)


def test_guard() -> None:
    assert analysis.guard(arm(40, 10), arm(400, 0)) is not None
    assert analysis.guard(arm(40, 1), arm(400, 0)) is None
    assert analysis.guard(arm(40, 0), arm(400, 0)) is None


def test_each_host_runs_the_canary_on_its_own_other_color() -> None:
    """Hosts need not share colors (a rolling deploy stopped by max_failures, a host
    skipped): abort stops, promote switches to and the crash check reads each host's own
    canary color, never the stable one of a host whose colors are the other way round."""
    from types import SimpleNamespace
    from typing import Any, cast

    from goship.canary.engine import canary_color

    rules = Rules(release="v2", color="green", weight=10)
    h1 = SimpleNamespace(state={"canary": {"stable_color": "blue"}})
    h2 = SimpleNamespace(state={"canary": {"stable_color": "green"}})
    old = SimpleNamespace(state={"canary": {}})  # a canary started before colors were kept
    assert canary_color(cast(Any, h1), rules) == "green"
    assert canary_color(cast(Any, h2), rules) == "blue"
    assert canary_color(cast(Any, old), rules) == "green"
