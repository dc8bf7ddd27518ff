"""goship remove on a lab host with two apps: the removed one leaves nothing behind but the
data it was told to keep, the other keeps serving through the same nginx, untouched."""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import CliResult, need
from tests.e2e.conftest import Lab
from tests.e2e.helpers import Project, example_repo, free_port
from tests.e2e.load import Load

pytestmark = pytest.mark.slow
lab_test = pytest.mark.lab
Run = Callable[..., CliResult]
H1 = "10.78.0.11"
KEEP, GONE = "rm-keep", "rm-gone"
LISTEN = {KEEP: 8091, GONE: 8092}

TOML = """
[app]
name = "{name}"
version = "git"
[app.stamp]
"main.version" = "{{version}}"
[build]
assets = ["templates", "static"]
[run]
base_port = {port}
drain_timeout = 3.0
[run.health]
interval = 0.2
deadline = 15.0
[proxy]
listen = {listen}
[env.lab]
lab = 1
"""


def version(app: str) -> str:
    with urllib.request.urlopen(f"http://{H1}:{LISTEN[app]}/version", timeout=5) as r:
        return str(json.loads(r.read())["version"])


def sh(lab: Lab, command: str) -> str:
    return lab.ssh("h1", command, check=False).stdout.strip()


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[dict[str, Project]]:
    base = tmp_path_factory.mktemp("remove")
    out = {name: Project(base / name, TOML.format(name=name, port=port, listen=LISTEN[name]))
           for name, port in ((KEEP, 9300), (GONE, 9400))}
    yield out
    lab.remove_app(KEEP, ["h1"], f"/etc/systemd/system/{KEEP}-blue@.service",
                   f"/etc/systemd/system/{KEEP}-green@.service")
    lab.remove_app(GONE, ["h1"])


@lab_test
def test_remove_takes_one_app_off_and_leaves_the_other(run_cli: Run, lab: Lab,
                                                      apps: dict[str, Project]) -> None:
    default_before = sh(lab, "test -e /etc/nginx/sites-enabled/default && echo yes")
    # GONE first: it moves Debian's default site aside, so its removal must bring it back.
    gone, keep = apps[GONE], apps[KEEP]
    gone.release("v1.0.0")
    assert (r := run_cli("deploy", "lab", "--skip-checks", cwd=gone.root)).code == 0, r.err
    gone.release("v1.1.0")  # a second release: the first stays warm under a standby timer
    assert (r := run_cli("deploy", "lab", "--skip-checks", cwd=gone.root)).code == 0, r.err
    keep.release("v2.0.0")
    assert (r := run_cli("deploy", "lab", "--skip-checks", cwd=keep.root)).code == 0, r.err
    assert (version(GONE), version(KEEP)) == ("v1.1.0", "v2.0.0")
    timers = sh(lab, f"systemctl list-units --all --plain --no-legend 'goship-{GONE}-*'")
    assert f"goship-{GONE}-standby-" in timers, timers
    # The service user's data: kept unless --purge-data.
    lab.ssh("h1", f"echo rows > /srv/{GONE}/shared/data/app.db")
    keep_before = sh(lab, f"cat /srv/{KEEP}/state.json /etc/nginx/conf.d/goship-{KEEP}.conf "
                          f"/etc/systemd/system/{KEEP}-*@.service | sha256sum")

    # Without a terminal and without --yes: refused, nothing changed.
    r = run_cli("remove", "lab", cwd=gone.root)
    assert r.code == 2, r.out + r.err
    assert "--yes" in r.err
    assert version(GONE) == "v1.1.0"
    # --dry-run prints the plan from the host's facts and changes nothing.
    r = run_cli("remove", "lab", "--dry-run", cwd=gone.root)
    assert r.code == 0, r.err
    for what in (f"/etc/nginx/conf.d/goship-{GONE}.conf", f"goship-{GONE}-standby-",
                 f"{GONE}-blue@9400.service", f"{GONE}-blue@.service", "keeps: ",
                 f"/srv/{GONE}/shared/data"):
        assert what in r.out, r.out
    assert KEEP not in r.out
    assert version(GONE) == "v1.1.0"

    with Load(f"http://{H1}:{LISTEN[KEEP]}/api/items") as load:
        r = run_cli("remove", "lab", "--yes", cwd=gone.root)
    assert r.code == 0, r.out + r.err
    # The other app answered every request it got; the reload that takes the site out
    # closes each idle keepalive connection of the old workers once, which wrk counts as a
    # read error (wrk #180), so at most one per connection.
    assert load.result.requests > 1000, load.result.text
    assert load.result.non2xx == 0, load.result.text
    assert load.result.errors <= 16, load.result.text

    # The other app: serving, and not one of its files changed.
    assert version(KEEP) == "v2.0.0"
    assert sh(lab, f"cat /srv/{KEEP}/state.json /etc/nginx/conf.d/goship-{KEEP}.conf "
                   f"/etc/systemd/system/{KEEP}-*@.service | sha256sum") == keep_before
    assert sh(lab, f"systemctl is-active {KEEP}-blue@9300") == "active"
    # Nothing of the removed one is left but its data.
    assert sh(lab, f"systemctl list-units --all --plain --no-legend '{GONE}-*' "
                   f"'goship-{GONE}-*'") == ""
    assert sh(lab, f"ls /etc/systemd/system | grep -c '^{GONE}-' ; "
                   f"ls /etc/systemd/system/*.wants | grep -c '^{GONE}-'") == "0\n0"
    for path in (f"/etc/nginx/conf.d/goship-{GONE}.conf", f"/run/goship/{GONE}",
                 f"/etc/tmpfiles.d/goship-{GONE}.conf",
                 f"/var/log/nginx/goship-{GONE}.access.log"):
        assert sh(lab, f"test -e {path} && echo present") == "", path
    assert sh(lab, f"find /srv/{GONE} | sort") == "\n".join(
        [f"/srv/{GONE}", f"/srv/{GONE}/shared", f"/srv/{GONE}/shared/data",
         f"/srv/{GONE}/shared/data/app.db"])
    assert sh(lab, f"ss -ltnH 'sport = :{LISTEN[GONE]}' | wc -l") == "0"
    assert sh(lab, f"id -u {GONE} >/dev/null && echo user") == "user"  # owns the data
    if default_before:
        assert sh(lab, "test -e /etc/nginx/sites-enabled/default && echo yes") == "yes"
    assert sh(lab, "nginx -t 2>&1 | tail -1").endswith("test is successful")

    # Again: nothing to remove (the kept data is not something to remove).
    r = run_cli("remove", "lab", cwd=gone.root)
    assert r.code == 0, r.out + r.err
    assert "h1: nothing to remove" in r.out
    # --purge-data: the data and the user go too.
    r = run_cli("remove", "lab", "--yes", "--purge-data", cwd=gone.root)
    assert r.code == 0, r.out + r.err
    assert sh(lab, f"test -e /srv/{GONE} && echo present") == ""
    assert sh(lab, f"id -u {GONE} 2>/dev/null") == ""
    assert sh(lab, f"test -e /etc/sysusers.d/{GONE}.conf && echo present") == ""


@lab_test
def test_remove_refuses_while_a_deploy_holds_the_lock(run_cli: Run, lab: Lab,
                                                      apps: dict[str, Project]) -> None:
    keep = apps[KEEP]
    owner = json.dumps({"token": "t0k3n", "who": "ci@elsewhere", "host": "elsewhere",
                        "pid": 4242, "started": "now", "command": "goship deploy lab"})
    lab.ssh("h1", f"mkdir /srv/{KEEP}/.lock && echo '{owner}' > /srv/{KEEP}/.lock/owner")
    r = run_cli("remove", "lab", "--yes", cwd=keep.root)
    assert r.code == 4, r.out + r.err
    assert "ci@elsewhere" in r.err
    assert version(KEEP) == "v2.0.0"  # nothing changed
    lab.ssh("h1", f"rm -rf /srv/{KEEP}/.lock")
    r = run_cli("remove", "lab", "--yes", "--purge-data", cwd=keep.root)
    assert r.code == 0, r.out + r.err
    assert sh(lab, f"test -e /srv/{KEEP} && echo present") == ""


def test_local_mode_remove_stops_the_apps_own_supervisord_and_nginx(
        run_cli: Run, tmp_path: Path) -> None:
    need("nginx")
    base = tmp_path / "deploy"
    listen = free_port(10000, 15000)
    root = example_repo(tmp_path / "svc", toml=f"""
[app]
name = "rm-local"
[build]
assets = ["templates", "static"]
[run]
base_port = {free_port(15000, 29000)}
[run.health]
interval = 0.2
[deploy]
base_path = "{base}"
[metrics]
file_sd = "targets/rm-local.json"
[env.local]
local = true
[env.local.proxy]
listen = {listen}
""")
    r = run_cli("deploy", "local", "--skip-checks", cwd=root)
    assert r.code == 0, r.out + r.err
    run_dir = base / "rm-local" / "run"
    pids = [int((run_dir / f).read_text()) for f in ("supervisord.pid", "nginx.pid")]
    assert (root / "targets" / "rm-local.json").exists()
    r = run_cli("remove", "local", "--yes", cwd=root)
    assert r.code == 0, r.out + r.err
    for pid in pids:  # goship's own supervisord and nginx of this app are gone
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z", pid
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", listen), timeout=1).close()
    assert not (base / "rm-local").exists()
    assert not (root / "targets" / "rm-local.json").exists()
    assert os.listdir(base) == []
    r = run_cli("remove", "local", cwd=root)
    assert r.code == 0, r.out + r.err
    assert "nothing of rm-local to remove on local" in r.out
