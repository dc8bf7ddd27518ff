"""The unit tier's shells are local stand-ins: none is kept between tests (park.py) unless
a test asks for it with its own directory."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_kept_shells(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOSHIP_KEEP_SHELLS", "0")
