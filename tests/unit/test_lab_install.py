"""`goship lab up --install`: which Debian packages it installs, and its refusal when it
cannot (the real apt-get path runs in scripts/packages.sh and on fresh CI machines)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from goship.lab import system
from tests.conftest import REPO, CliResult

Run = Callable[..., CliResult]


def test_installs_only_what_is_missing_host_parts_included() -> None:
    have = {"systemd", "iproute2", "util-linux", "mount", "coreutils", "openssh-client"}
    assert system.missing_packages(lambda p: p in have) == [
        "openssh-server", "nginx", "libnginx-mod-http-lua", "iptables"]
    assert system.missing_packages(lambda p: True) == []


def test_every_package_the_lab_checks_for_is_installed_by_install() -> None:
    needed = set(system.TOOLS.values()) | set(system.HOST_BINARIES.values())
    assert needed <= set(system.PACKAGES)


def test_docs_name_the_packages() -> None:
    for doc in ("README.md", "docs/lab.md"):
        text = (REPO / doc).read_text()
        assert "goship lab up --install" in text, doc
    lab_doc = (REPO / "docs" / "lab.md").read_text()
    assert all(p in lab_doc for p in system.PACKAGES)


def test_install_refused_when_not_root_and_nothing_runs(
        run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    r = run_cli("lab", "up", "--install")
    assert r.code == 2
    assert r.err == ("goship: installing the lab's Debian packages needs root; "
                     "sudo goship lab up --install\n")
    assert calls == []


def test_a_boot_that_went_right_leaves_no_note() -> None:
    from goship.lab.hosts import _failed_units_note
    from goship.lab.layout import HostLayout

    assert _failed_units_note(HostLayout(1), "running\n") is None


def test_units_failed_at_boot_are_named_with_their_last_words() -> None:
    from goship.lab.hosts import _failed_units_note
    from goship.lab.layout import HostLayout

    out = ("failed: pg.service: could not bind  timeout \nfailed: x.service: \n"
           "after restart: degraded\n")
    assert _failed_units_note(HostLayout(2), out) == (
        "h2: units failed at boot, restarted once: pg.service: could not bind  timeout; "
        "x.service: (after restart: degraded)")
