"""Runs after the other lab tests (file order): `down` must leave the machine as it was."""

from __future__ import annotations

import pytest

from goship.lab import hosts
from tests.e2e.conftest import Lab, snapshot

pytestmark = pytest.mark.lab


def test_down_leaves_nothing_behind(lab: Lab) -> None:
    hosts.down()
    try:
        after = snapshot()
        for kind, before in lab.before.items():
            assert after[kind] == before, f"{kind} left behind: {after[kind] - before}"
    finally:
        hosts.up(3)  # later tests in this session may still use the lab
