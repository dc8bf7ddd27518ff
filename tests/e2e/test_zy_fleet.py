"""Twenty lab hosts: one deploy and one rollback across all of them, in parallel."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from goship.lab import hosts
from tests.conftest import CliResult
from tests.e2e.conftest import Lab
from tests.e2e.helpers import example_repo, git
from tests.e2e.load import Load

pytestmark = [pytest.mark.lab, pytest.mark.slow]
Run = Callable[..., CliResult]
FLEET = 20


def version(i: int) -> str:
    with urllib.request.urlopen(f"http://10.78.0.{10 + i}:8085/version", timeout=5) as r:
        return str(json.loads(r.read())["version"])


def test_twenty_hosts(run_cli: Run, lab: Lab, tmp_path: Path) -> None:
    hosts.up(FLEET)
    root = tmp_path / "fleet"
    example_repo(root, toml=f"""
[app]
name = "fleet-app"
[app.stamp]
"main.version" = "{{version}}"
[build]
assets = ["templates", "static"]
[run]
base_port = 9400  # clear of the other test apps (their colors use +100)
[run.health]
interval = 0.2
[proxy]
listen = 8085  # other apps of the test session are the hosts' default server on :80
[env.fleet]
lab = {FLEET}
""")
    started = time.monotonic()
    r = run_cli("deploy", "fleet", "--skip-checks", cwd=root)
    first = time.monotonic() - started
    assert r.code == 0, r.out + r.err
    assert f"on {FLEET} host(s)" in r.out
    assert {version(i) for i in range(1, FLEET + 1)} == {"v1.0.0"}
    git(root, "commit", "-qm", "v2", "--allow-empty")
    git(root, "tag", "v2.0.0")
    with Load("http://10.78.0.30:8085/api/items") as load:
        r = run_cli("deploy", "fleet", "--skip-checks", cwd=root)
        assert r.code == 0, r.out + r.err
        started = time.monotonic()
        back = run_cli("rollback", "fleet", cwd=root)
        rollback = time.monotonic() - started
    assert back.code == 0, back.out + back.err
    assert {version(i) for i in range(1, FLEET + 1)} == {"v1.0.0"}
    assert load.result.failed == 0, load.result.text
    print(f"{FLEET} hosts: first deploy {first:.1f}s, rollback {rollback:.1f}s")
