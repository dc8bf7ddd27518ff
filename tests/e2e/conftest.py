"""End-to-end fixtures: a lab booted once per test session, the example service built once."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import components
from tests.conftest import EXAMPLE, need, skip


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):  # type: ignore[no-untyped-def]
    """Outside pytest-timeout's clock: a test that needs the Go-built components waits
    for their background build (tests/components.py)."""
    mark = item.get_closest_marker("components")
    if mark:
        waited = components.wait(mark.args)
        if waited >= 1:
            print(f"\n(waited {waited:.0f}s for {', '.join(mark.args)})", flush=True)
    yield


def pytest_runtest_setup(item: pytest.Item) -> None:
    mark = item.get_closest_marker("components")
    if mark:
        why = components.failure(mark.args)
        if why:
            pytest.fail(why, pytrace=False)


def snapshot() -> dict[str, set[str]]:
    """What the lab could leave behind on the machine."""
    def lines(*argv: str) -> set[str]:
        res = subprocess.run(argv, capture_output=True, text=True, check=False)
        return {line.strip() for line in res.stdout.splitlines() if line.strip()}

    cgroups = set()
    for root in Path("/sys/fs/cgroup").iterdir():
        if (root / "goship-lab").exists():
            cgroups.add(str(root / "goship-lab"))
    return {
        "netns": lines("ip", "netns", "list"),
        "links": {line.split(":")[1].split("@")[0].strip()
                  for line in lines("ip", "-o", "link", "show")},
        # (the tests' own Docker engine, `docker` below, is not the lab's: it may start
        # after `before` and its mounts come and go with it)
        "mounts": {m for line in Path("/proc/self/mounts").read_text().splitlines()
                   if not (m := line.split()[1]).startswith(DOCKER_MOUNTS)},
        "forward": lines("iptables", "-S", "FORWARD"),
        # (a process waiting for the lab's lock is not part of the lab)
        "processes": {line for line in lines("ps", "-eo", "args")
                      if ("goship-lab" in line and "goship-lab.lock" not in line)
                      or "systemd --system" in line},
        "files": {str(p) for p in Path("/run").glob("goship-lab*")},
        "cgroups": cgroups,
        "sysctl": {Path("/proc/sys/fs/inotify/max_user_instances").read_text().strip()},
    }


@dataclass
class Lab:
    before: dict[str, set[str]]

    def ssh(self, host: str, command: str, check: bool = True,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        from goship.lab import hosts, layout

        argv = [*hosts.ssh_argv(layout.parse_host(host)), command]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and res.returncode != 0:
            raise AssertionError(f"{host}: {command!r} exited {res.returncode}: {res.stderr}")
        return res

    def nginx_errors(self, hosts: Iterable[str], lines: int = 30) -> str:
        """The last lines of each host's nginx error log: what a failed load assertion
        shows beside wrk's counts (a timed-out or refused upstream names itself there)."""
        out = []
        for h in hosts:
            res = self.ssh(h, f"tail -n {lines} /var/log/nginx/error.log", check=False)
            out.append(f"--- {h}: /var/log/nginx/error.log\n{res.stdout}{res.stderr}")
        return "\n".join(out)

    def remove_app(self, app: str, hosts: Iterable[str], *more: str) -> None:
        """The suites share the lab's hosts: an app a suite deployed goes when it ends
        (units, nginx site, files, and `more` units or paths)."""
        units = " ".join(u for u in more if not u.startswith("/"))
        paths = " ".join(p for p in more if p.startswith("/"))
        # Debian's default site, which the app's first deploy moved aside, comes back
        # unless another site is the default server now (a fresh server's port 80).
        off = f"/srv/{app}/nginx-default-site.off"
        restore = (f"if [ -f {off} ] && [ ! -e /etc/nginx/sites-enabled/default ] && ! grep -qs "
                   f"default_server /etc/nginx/conf.d/*.conf; then mv {off} "
                   f"/etc/nginx/sites-enabled/default; fi")
        for h in hosts:
            self.ssh(h, f"systemctl stop '{app}-*' {units}; "
                        f"rm -f /etc/nginx/conf.d/goship-{app}.conf; {restore}; "
                        f"systemctl reload nginx; rm -rf /srv/{app} {paths}", check=False)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        skip("the lab needs root (CI runs as root)")
    from goship.lab import hosts

    # A lab left up by an interrupted run keeps its hosts' disks (apps, canaries, moved
    # nginx sites): the suites start from fresh servers, and `before` is the bare machine.
    hosts.down()
    before = snapshot()
    hosts.up(3)
    yield Lab(before)
    hosts.down()


@pytest.fixture(scope="module")
def docker_lab(lab: Lab) -> Iterator[Lab]:
    """The lab's hosts with a Docker engine each (`goship lab up --docker`), for one test
    module: the engines stop after it, so the suites after it see fresh servers again
    (`lab`'s teardown removes everything)."""
    from goship.lab import hosts

    hosts.up(3, docker=True)
    yield lab
    for h in ("h1", "h2", "h3"):
        lab.ssh(h, "systemctl stop docker.socket docker.service containerd.service",
                check=False, timeout=60)


@pytest.fixture(scope="session")
def hello_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example service, built with version variables stamped as goship will stamp them."""
    go = need("go")
    out = tmp_path_factory.mktemp("bin") / "hello-gin"
    ldflags = "-s -w -X main.version=v9.8.7-test -X main.commit=abc1234 " \
              "-X main.buildTime=2026-01-02T03:04:05Z"
    subprocess.run([go, "build", "-trimpath", "-mod=readonly", "-ldflags", ldflags, "-o",
                    str(out), "."], cwd=EXAMPLE, check=True, timeout=600,
                   env={**os.environ, "CGO_ENABLED": "0"})
    return out


DOCKER_SOCK = "/run/goship-test-docker.sock"
DOCKER_MOUNTS = ("/run/goship-test-docker/", "/var/lib/goship-test-docker")


@pytest.fixture(scope="session")
def docker() -> Iterator[list[str]]:
    """A Docker engine of the tests' own, started by hand (no image can be pulled here)."""
    if shutil.which("dockerd") is None or os.geteuid() != 0:
        skip("needs root and Debian's docker.io (dockerd)")
    cli = ["docker", "-H", f"unix://{DOCKER_SOCK}"]
    proc = None
    if subprocess.run([*cli, "info"], capture_output=True, check=False).returncode != 0:
        log = open("/tmp/goship-test-dockerd.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            ["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none",
             "-H", f"unix://{DOCKER_SOCK}", "--data-root", "/var/lib/goship-test-docker",
             "--exec-root", "/run/goship-test-docker", "--pidfile",
             "/run/goship-test-docker.pid"], stdout=log, stderr=subprocess.STDOUT)
        for _ in range(100):
            if subprocess.run([*cli, "info"], capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.2)
        else:
            proc.kill()
            pytest.fail("dockerd did not start: see /tmp/goship-test-dockerd.log")
    yield cli
    if proc is not None:
        proc.terminate()
        proc.wait(timeout=30)
        # dockerd leaves its default network namespace's mount behind
        subprocess.run(["umount", "/run/goship-test-docker/netns/default"],
                       capture_output=True, check=False)
