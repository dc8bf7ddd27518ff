"""The CI skip policy (tests/conftest.py): a skip fails under CI=true unless README.md's
Tests section lists its reason."""

from __future__ import annotations

import pytest

from tests.conftest import REPO, allowed_skips

pytest_plugins = ["pytester"]

TESTS = """
from tests.conftest import need, skip

def test_listed():
    skip("upx is not installed here")

def test_unlisted():
    need("no-such-tool-goship")
"""


def test_readme_lists_the_upx_skip() -> None:
    assert "upx is not installed" in allowed_skips()


@pytest.mark.parametrize(("ci", "failed", "skipped"), [("true", 1, 1), ("", 0, 2)])
def test_unlisted_skip_fails_only_in_ci(pytester: pytest.Pytester,
                                        monkeypatch: pytest.MonkeyPatch,
                                        ci: str, failed: int, skipped: int) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.syspath_prepend(str(REPO))
    pytester.makepyfile(test_it=TESTS)
    res = pytester.runpytest_inprocess("-p", "tests.conftest", "-q")
    res.assert_outcomes(failed=failed, skipped=skipped)
    if failed:
        res.stdout.fnmatch_lines(["*'no-such-tool-goship is not installed' is not a skip*"])
