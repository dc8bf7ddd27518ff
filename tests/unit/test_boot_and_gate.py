"""What boot starts and what the health gate proves, without a systemctl each: the boot
links made as `systemctl enable` makes them (the script run for real on a directory), the
[Install] sections that allow it, and the gate's check that an instance still runs, with
real `sh`, `curl` and a real HTTP server."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from goship.command import Cmd
from goship.config import parse
from goship.deploy import scripts
from goship.deploy.layout import Paths
from goship.deploy.services import UNIT_DIR, Systemd, install_dirs, template_of
from goship.transport.base import Result
from goship.transport.fake import FakeTransport

INSTALL = [
    ("[Service]\nExecStart=/x\n[Install]\nWantedBy=multi-user.target\n",
     ["multi-user.target.wants"]),
    ("[Install]\nWantedBy=multi-user.target graphical.target\nRequiredBy=app.target\n",
     ["multi-user.target.wants", "graphical.target.wants", "app.target.requires"]),
    ("[Install]\n# a comment\n; another\nWantedBy=multi-user.target\n",
     ["multi-user.target.wants"]),
    ("[Install]\nWantedBy=a.target\nWantedBy=\nWantedBy=b.target\n", ["b.target.wants"]),
    ("[Service]\nExecStart=/x\n", []),  # nothing to enable: no links
    ("[Unit]\nWantedBy=not-install.target\n", []),  # only [Install] counts
    ("[Install]\nWantedBy=multi-user.target\nAlias=other.service\n", None),
    ("[Install]\nAlso=helper.service\n", None),
    ("[Install]\nDefaultInstance=9000\n", None),
    ("[Install]\nWantedBy=%i.target\n", None),  # a specifier: systemctl expands it
    ("[Install]\nWantedBy=multi-user.target \\\n  graphical.target\n", None),
    ("[Install]\nWantedBy=../../etc.target\n", None),
]


@pytest.mark.parametrize(("text", "dirs"), INSTALL)
def test_install_sections_that_links_alone_can_enable(text: str, dirs: list[str] | None
                                                      ) -> None:
    assert install_dirs(text) == dirs


@pytest.mark.parametrize(("unit", "template"), [
    ("shop-blue@9000.service", "shop-blue@.service"),
    ("shop.worker-green@2.service", "shop.worker-green@.service"),
    ("shop.nightly-blue.timer", "shop.nightly-blue.timer"),
])
def test_the_unit_file_an_instance_comes_from(unit: str, template: str) -> None:
    assert template_of(unit) == template


def links(units: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", scripts.SYSTEMD_LINKS, "goship-enable", str(units),
                           *args], capture_output=True, text=True, check=False, timeout=30)


def test_boot_links_made_and_removed_as_systemctl_would(tmp_path: Path) -> None:
    units = tmp_path / "system"
    units.mkdir()
    for t in ("shop-blue@.service", "shop-green@.service"):
        (units / t).write_text("[Install]\nWantedBy=multi-user.target\n")
    wants = units / "multi-user.target.wants"
    wants.mkdir()
    # blue was enabled (and, under an older [Install], also wanted by graphical.target)
    (wants / "shop-blue@9000.service").symlink_to(units / "shop-blue@.service")
    (units / "graphical.target.wants").mkdir()
    (units / "graphical.target.wants" / "shop-blue@9000.service").symlink_to(
        units / "shop-blue@.service")
    neighbour = wants / "nginx.service"
    neighbour.symlink_to("/lib/systemd/system/nginx.service")
    r = links(units, str(wants / "shop-green@9100.service"), str(units / "shop-green@.service"),
              str(units / "app.target.requires" / "shop-green@9100.service"),
              str(units / "shop-green@.service"),
              "--", "shop-blue@9000.service", "shop-blue@9001.service")
    assert r.returncode == 0, r.stderr
    assert (wants / "shop-green@9100.service").readlink() == units / "shop-green@.service"
    # a missing .requires directory is made
    assert (units / "app.target.requires" / "shop-green@9100.service").is_symlink()
    assert not (wants / "shop-blue@9000.service").is_symlink()
    assert not (units / "graphical.target.wants" / "shop-blue@9000.service").is_symlink()
    assert neighbour.is_symlink()  # other units' links are never touched
    # again: nothing to do, nothing changes (a good link stays as it is)
    before = (wants / "shop-green@9100.service").lstat().st_mtime_ns
    assert links(units, str(wants / "shop-green@9100.service"),
                 str(units / "shop-green@.service"), "--", "shop-blue@9000.service"
                 ).returncode == 0
    assert (wants / "shop-green@9100.service").lstat().st_mtime_ns == before


def test_a_dangling_boot_link_is_made_again(tmp_path: Path) -> None:
    units = tmp_path / "system"
    (units / "multi-user.target.wants").mkdir(parents=True)
    (units / "shop-green@.service").write_text("[Install]\nWantedBy=multi-user.target\n")
    link = units / "multi-user.target.wants" / "shop-green@9100.service"
    link.symlink_to(units / "gone@.service")
    assert links(units, str(link), str(units / "shop-green@.service"), "--").returncode == 0
    assert link.readlink() == units / "shop-green@.service"


def systemd(tmp_path: Path, override: str | None = None,
            processes: dict[str, Any] | None = None) -> tuple[Systemd, FakeTransport]:
    config = parse({"app": {"name": "shop"}, "run": {"base_port": 9000},
                    **({"processes": processes} if processes else {})}).base
    if override is not None:
        tdir = tmp_path / "goship" / "templates"
        tdir.mkdir(parents=True)
        (tdir / "systemd.service.j2").write_text(override)
    t = FakeTransport("h1", {"goship-enable": Result(0, "", "")})
    return Systemd(t, config, Paths("/srv", "shop")), t


def sent(t: FakeTransport) -> list[Cmd]:
    t.settle()
    return t.calls


def test_enable_sends_the_links_of_the_live_color_and_drops_the_others(tmp_path: Path) -> None:
    s, t = systemd(tmp_path)
    s.enable("green", also=[9005], root=tmp_path)
    (cmd,) = sent(t)
    argv = list(cmd.argv)
    assert argv[:3] == ["sh", "-c", scripts.SYSTEMD_LINKS]
    assert "systemctl" not in " ".join(argv[3:])
    sep = argv.index("--")
    assert argv[4:sep] == [UNIT_DIR,
                           f"{UNIT_DIR}/multi-user.target.wants/shop-green@9100.service",
                           f"{UNIT_DIR}/shop-green@.service"]
    assert argv[sep + 1:] == ["shop-blue@9000.service", "shop-blue@9005.service",
                              "shop-green@9005.service"]


def test_workers_and_job_timers_of_the_live_color_start_at_boot(tmp_path: Path) -> None:
    s, t = systemd(tmp_path, processes={
        "worker": {"main": "cmd/worker", "instances": 2},
        "nightly": {"main": "cmd/nightly", "schedule": "*-*-* 03:00:00"}})
    s.enable("blue", root=tmp_path)
    (cmd,) = sent(t)
    argv = list(cmd.argv)
    sep = argv.index("--")
    pairs = dict(zip(argv[5:sep:2], argv[6:sep:2], strict=True))
    assert pairs == {
        f"{UNIT_DIR}/multi-user.target.wants/shop-blue@9000.service":
            f"{UNIT_DIR}/shop-blue@.service",
        f"{UNIT_DIR}/timers.target.wants/shop.nightly-blue.timer":
            f"{UNIT_DIR}/shop.nightly-blue.timer",
        f"{UNIT_DIR}/multi-user.target.wants/shop.worker-blue@1.service":
            f"{UNIT_DIR}/shop.worker-blue@.service",
        f"{UNIT_DIR}/multi-user.target.wants/shop.worker-blue@2.service":
            f"{UNIT_DIR}/shop.worker-blue@.service",
    }
    assert set(argv[sep + 1:]) == {"shop-green@9100.service", "shop.nightly-green.timer",
                                   "shop.worker-green@1.service", "shop.worker-green@2.service"}


def test_an_install_section_links_cannot_do_goes_to_systemctl(tmp_path: Path) -> None:
    s, t = systemd(tmp_path, "[Service]\nExecStart=/x\n[Install]\nWantedBy=multi-user.target\n"
                             "Alias={{ app }}-{{ color }}-alias@.service\n")
    s.enable("blue", root=tmp_path)
    (cmd,) = sent(t)
    assert list(cmd.argv)[:3] == ["sh", "-c", scripts.SYSTEMD_ENABLE]
    assert list(cmd.argv)[4:] == ["1", "shop-blue@9000.service", "shop-green@9100.service"]


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def health_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health"
    finally:
        server.shutdown()
        server.server_close()


def gate(pids: str, url: str, successes: int = 3) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", scripts.HEALTH_GATE, "goship-gate", "10",
                           str(successes), "0.2", "2", pids, url],
                          capture_output=True, text=True, check=False, timeout=60)


def test_gate_passes_when_the_instance_answers_and_still_runs(health_url: str) -> None:
    with subprocess.Popen(["sleep", "30"]) as alive:
        try:
            r = gate(f"9000:{alive.pid}", health_url)
        finally:
            alive.kill()
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1] == f"ok {health_url} HTTP 200"


def test_gate_fails_when_the_instance_stopped_during_it(health_url: str) -> None:
    # Something else answers the URL (a neighbour, a restarted copy): the instance the
    # gate was given is gone by the time it answered three times.
    with subprocess.Popen(["sleep", "0.1"]) as short:
        r = gate(f"9000:{short.pid}", health_url)
    assert r.returncode == 1
    assert r.stdout.splitlines()[-1] == f"gone 9000 {short.pid}"


def test_gate_without_pids_checks_the_answer_alone(health_url: str) -> None:
    r = gate("", health_url, successes=1)
    assert r.returncode == 0, r.stdout + r.stderr
