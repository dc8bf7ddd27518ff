"""goship measured side by side with what its users would otherwise do, pairs run in turn
(A B A B ...), medians with the min-max spread, ratios pair by pair. Writes
docs/benchmarks.md and docs/bench-release.png. Needs root (the lab); `--quick` for a short
version, `--only NAME` for one measure."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
GOSHIP = [str(BIN / "goship")]
EXAMPLE = REPO / "examples" / "hello-gin"
REFERENCE_LAB = REPO.parent / "shared" / "lab-reference.sh"
LAB_KEY = "/run/goship-lab/id_ed25519"
LAB_KNOWN = "/run/goship-lab/known_hosts"


# ---- small helpers ----------------------------------------------------------------------

@dataclass
class Series:
    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def show(self, unit: str = "s", fmt: str = "{:.2f}") -> str:
        unit = f" {unit}" if unit else ""
        if len(self.values) == 1:
            return f"{fmt.format(self.values[0])}{unit}"
        return (f"{fmt.format(self.median)}{unit} "
                f"({fmt.format(min(self.values))}-{fmt.format(max(self.values))})")


def sh(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None,
       check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(argv), cwd=cwd, env={**os.environ, **(env or {})},
                         capture_output=True, text=True, timeout=timeout, check=False)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... exited {res.returncode}:\n"
                           f"{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return res


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ssh(host: int, command: str, check: bool = True) -> str:
    return sh("ssh", "-i", LAB_KEY, "-o", f"UserKnownHostsFile={LAB_KNOWN}",
              "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
              f"root@10.78.0.{10 + host}", command, check=check).stdout


def version(tool: list[str]) -> str:
    try:
        res = subprocess.run(tool, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        return "not installed"
    return ((res.stdout or res.stderr).strip().splitlines() or ["?"])[0]


class Load:
    """wrk against a URL until stopped; failures = socket errors + non-2xx answers."""

    def __init__(self, url: str, timeline: bool = False) -> None:
        argv = ["wrk", "-t2", "-c16", "-d600s", "--timeout", "5s"]
        if timeline:
            argv += ["-s", str(REPO / "bench" / "timeline.lua")]
        self.proc = subprocess.Popen([*argv, url], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        time.sleep(1.0)

    def stop(self) -> dict[str, Any]:
        time.sleep(1.0)
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=60)
        req = re.search(r"(\d+) requests in", out)
        sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                         out)
        non = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = sum(int(x) for x in sock.groups()) if sock else 0
        timeline = [tuple(int(x) for x in line.split()[1:])
                    for line in out.splitlines() if line.startswith("TIMELINE")]
        total = int(req.group(1)) if req else 0
        return {"requests": total, "failed": errors + (int(non.group(1)) if non else 0),
                "timeline": sorted(timeline)}


def write_section(out: Path, begin: str, end: str, text: str) -> None:
    """A standalone bench's section (`text`, from `begin` to `end` markers) written into
    `out`: in place of the last one, or appended."""
    doc = out.read_text() if out.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    doc = pattern.sub(lambda _: text, doc) if pattern.search(doc) else \
        doc.rstrip("\n") + "\n\n" + text + "\n"
    out.write_text(doc)


def git(repo: Path, *args: str) -> None:
    sh("git", "-C", str(repo), *args, env={"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b",
                                          "GIT_COMMITTER_NAME": "b",
                                          "GIT_COMMITTER_EMAIL": "b@b"})


def example_project(where: Path, toml: str | None, ignore_dist: bool = False) -> Path:
    """A copy of examples/hello-gin at `where`, with `toml` as its goship.toml (None: none
    yet, the bench writes its own later), committed as v1: what a standalone bench ships."""
    shutil.copytree(EXAMPLE, where, ignore=shutil.ignore_patterns("dist", "goship.toml"))
    if toml is not None:
        (where / "goship.toml").write_text(toml)
    if ignore_dist:
        (where / ".gitignore").write_text("dist/\n")
    git(where, "init", "-q")
    git(where, "add", ".")
    git(where, "commit", "-qm", "v1")
    return where


def standalone_args(doc: str | None, name: str, runs: int,
                    extra: Callable[[argparse.ArgumentParser], None] | None = None
                    ) -> argparse.Namespace:
    """A standalone bench's arguments (--runs, --out and `extra`'s); exits unless root."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--runs", type=int, default=runs)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    if extra is not None:
        extra(ap)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit(f"bench.{name} needs root (it boots lab hosts)")
    return args


def release_rows(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    """| method | failed | requests | wall time | rows, one per method, over its runs."""
    rows = []
    for name, rs in results.items():
        failed = Series([r["failed"] for r in rs])
        total = Series([r["requests"] for r in rs])
        wall = Series([r["seconds"] for r in rs])
        rows.append(f"| {name} | {failed.show('', '{:.0f}')} | {total.show('', '{:.0f}')} | "
                    f"{wall.show()} |")
    return rows


# ---- the project the benchmarks ship ----------------------------------------------------

TOML = """
[app]
name = "bench-app"
[app.stamp]
"main.version" = "{version}"
[build]
assets = ["templates", "static"]
[run]
base_port = 9200
drain_timeout = 3.0
[run.health]
interval = 0.2
[canary]
steps = [10, 50, 100]
step_min_requests = 300
step_min_seconds = 2.0
guard_interval = 1.0
"""


class Bench:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.runs = 1 if quick else 3
        self.tmp = Path(tempfile.mkdtemp(prefix="goship-bench-"))
        self.project = self.tmp / "bench-app"
        shutil.copytree(EXAMPLE, self.project, ignore=shutil.ignore_patterns("dist",
                                                                            "goship.toml"))
        envs = "".join(f"[env.b{n}]\nlab = {n}\n[env.c{n}]\nlab = {n}\n"
                       f"[env.c{n}.deploy]\nrollback_window = 0.0\n" for n in (1, 10, 20))
        (self.project / "goship.toml").write_text(TOML + envs)
        git(self.project, "init", "-q")
        git(self.project, "add", ".")
        git(self.project, "commit", "-qm", "v1")
        git(self.project, "tag", "v1.0.0")
        self.artifacts: dict[str, Any] = {}
        self.archives: dict[str, Path] = {}
        self.lab_hosts = 0

    # -- setup --
    def lab(self, n: int) -> None:
        from goship.lab import hosts

        if n > self.lab_hosts:
            hosts.up(n)
            self.lab_hosts = n

    def build_releases(self) -> None:
        """Two releases, built once: every deploy below ships one of them (no Go build in
        the timings)."""
        from goship.config import load
        from goship.deploy.engine import build_artifacts

        for tag in ("v1.0.0", "v2.0.0"):
            if tag == "v2.0.0":
                (self.project / "static" / "bench.txt").write_text("v2\n")
                git(self.project, "add", ".")
                git(self.project, "commit", "-qm", "v2")
                git(self.project, "tag", "v2.0.0")
            project = load(self.project / "goship.toml")
            arts = build_artifacts(project, project.env("b1"), {"amd64"}, allow_dirty=False,
                                   skip_checks=True)
            self.artifacts[tag] = arts["amd64"]
            archive = self.tmp / f"{tag}.tar.gz"
            archive.write_bytes(arts["amd64"].data)
            self.archives[tag] = archive

    def goship_deploy(self, n: int, tag: str, env_name: str | None = None) -> None:
        """A deploy of a prebuilt release: connect, plan, release, close (what `goship
        deploy` does after its build)."""
        from goship.config import load
        from goship.deploy.engine import Deployer, Outcome, env_values, fleet, release_built

        project = load(self.project / "goship.toml")
        env = project.env(env_name or f"b{n}")
        with fleet(env) as hosts:
            outcome = release_built(Deployer(project, env), hosts,
                                    {"amd64": self.artifacts[tag]}, env_values(project, env))
            assert isinstance(outcome, Outcome)  # noqa: S101 (not a dry run)
            if not outcome.ok:
                raise RuntimeError(outcome.failure)

    def inventory(self, n: int) -> Path:
        path = self.tmp / f"inventory-{n}.ini"
        lines = ["[all]"]
        for i in range(1, n + 1):
            lines.append(f"h{i} ansible_host=10.78.0.{10 + i} ansible_user=root "
                         f"ansible_ssh_private_key_file={LAB_KEY}")
        lines += ["", "[all:vars]",
                  f"ansible_ssh_common_args='-o UserKnownHostsFile={LAB_KNOWN} "
                  "-o StrictHostKeyChecking=yes'",
                  "ansible_python_interpreter=/usr/bin/python3", "binary=bench-app",
                  "port=8091"]
        path.write_text("\n".join(lines) + "\n")
        return path

    def ansible(self, n: int, tag: str, tuned: bool) -> None:
        cfg = self.tmp / ("ansible-tuned.cfg" if tuned else "ansible-default.cfg")
        if tuned:
            cfg.write_text("[defaults]\nforks = 20\nhost_key_checking = True\n"
                           "[ssh_connection]\npipelining = True\n"
                           "ssh_args = -o ControlMaster=auto -o ControlPersist=60s\n")
        else:
            cfg.write_text("[defaults]\nhost_key_checking = True\n")
        sh(str(BIN / "ansible-playbook"), "-i", str(self.inventory(n)),
           str(REPO / "bench" / "ansible" / "deploy.yml"),
           "-e", f"release={tag} archive={self.archives[tag]}",
           env={"ANSIBLE_CONFIG": str(cfg), "ANSIBLE_NOCOWS": "1"})

    def pyinfra(self, n: int, tag: str) -> None:
        inv = self.tmp / f"pyinfra_inventory_{n}.py"
        inv.write_text("hosts = [\n" + "".join(
            f"    ('10.78.0.{10 + i}', {{'ssh_user': 'root', 'ssh_key': '{LAB_KEY}', "
            f"'ssh_known_hosts_file': '{LAB_KNOWN}', 'ssh_strict_host_key_checking': 'yes', "
            f"'release': '{tag}', 'archive': '{self.archives[tag]}', 'port': 8092, "
            f"'binary': 'bench-app'}}),\n" for i in range(1, n + 1)) + "]\n")
        sh(str(BIN / "pyinfra"), "-y", "--parallel", str(max(n, 1)), str(inv),
           str(REPO / "bench" / "pyinfra_deploy.py"))

    def close(self) -> None:
        from goship.lab import hosts

        if self.lab_hosts:
            hosts.down()
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---- 1. requests lost during a release ---------------------------------------------------

ARTICLE_SITE = """server {
    listen %(listen)d;
    location / {
        proxy_pass http://127.0.0.1:%(port)d;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }
}
"""
ARTICLE_UNIT = """[Unit]
Description=hello-gin the articles' way
After=network.target
[Service]
WorkingDirectory=/opt/hello-article
ExecStart=/opt/hello-article/bench-app
Environment=PORT=8090
Restart=always
[Install]
WantedBy=multi-user.target
"""


def setup_article(b: Bench) -> None:
    """The articles' recipe on h1: one binary on one port behind nginx on :8082; the
    Ansible-deployed app behind nginx on :8084."""
    for tag, archive in b.archives.items():
        sh("scp", "-i", LAB_KEY, "-o", f"UserKnownHostsFile={LAB_KNOWN}", "-q", str(archive),
           f"root@10.78.0.11:/tmp/{tag}.tar.gz")
        ssh(1, f"mkdir -p /opt/rel/{tag} && tar -xzf /tmp/{tag}.tar.gz -C /opt/rel/{tag}")
    ssh(1, "mkdir -p /opt/hello-article && cp -r /opt/rel/v1.0.0/. /opt/hello-article/")
    ssh(1, f"cat > /etc/systemd/system/hello-article.service <<'EOF'\n{ARTICLE_UNIT}EOF\n"
           "systemctl daemon-reload && systemctl restart hello-article")
    for listen, port in ((8082, 8090), (8084, 8091)):
        site = ARTICLE_SITE % {"listen": listen, "port": port}
        ssh(1, f"cat > /etc/nginx/conf.d/article-{listen}.conf <<'EOF'\n{site}EOF\n"
               "nginx -t -q && systemctl reload nginx")
    b.ansible(1, "v1.0.0", tuned=True)
    time.sleep(1)


def release_lost(b: Bench) -> tuple[str, dict[str, list[tuple[int, int, int]]]]:
    b.lab(1)
    b.goship_deploy(1, "v1.0.0")
    setup_article(b)
    state = {"goship": "v1.0.0", "ansible": "v1.0.0", "article": "v1.0.0"}

    def flip(key: str) -> str:
        state[key] = "v2.0.0" if state[key] == "v1.0.0" else "v1.0.0"
        return state[key]

    methods: dict[str, tuple[str, Callable[[], None]]] = {
        "goship blue-green": ("http://10.78.0.11/api/items",
                              lambda: b.goship_deploy(1, flip("goship"))),
        "stop, copy, start (the articles)": (
            "http://10.78.0.11:8082/api/items",
            lambda: ssh(1, f"systemctl stop hello-article && cp /opt/rel/{flip('article')}/"
                           "bench-app /opt/hello-article/bench-app && "
                           "systemctl start hello-article")),
        "copy, systemctl restart": (
            "http://10.78.0.11:8082/api/items",
            lambda: ssh(1, f"cp /opt/rel/{flip('article')}/bench-app /opt/hello-article/.new "
                           "&& mv -f /opt/hello-article/.new /opt/hello-article/bench-app && "
                           "systemctl restart hello-article")),
        "Ansible playbook (restart + wait_for)": (
            "http://10.78.0.11:8084/api/items",
            lambda: b.ansible(1, flip("ansible"), tuned=True)),
    }
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in methods}
    timelines: dict[str, list[tuple[int, int, int]]] = {}
    for run in range(b.runs):
        for name, (url, action) in methods.items():
            load = Load(url, timeline=run == 0)
            action()
            time.sleep(1.0)
            r = load.stop()
            results[name].append(r)
            if run == 0:
                timelines[name] = r["timeline"]
    rows = []
    for name, rs in results.items():
        failed = Series([r["failed"] for r in rs])
        share = Series([100 * r["failed"] / max(1, r["requests"]) for r in rs])
        total = Series([r["requests"] for r in rs])
        rows.append(f"| {name} | {failed.show('', '{:.0f}')} | {total.show('', '{:.0f}')} | "
                    f"{share.show('%', '{:.2f}')} |")
    goship_failed = statistics.median(r["failed"] for r in results["goship blue-green"])
    verdict = "met" if goship_failed == 0 else "MISSED"
    text = "\n".join([
        "## 1. Requests lost during a release",
        "",
        "Steady load from wrk (2 threads, 16 connections) through nginx on lab host h1 while "
        "the release happens, from 1 s before to 1 s after. The same two prebuilt releases "
        "alternate. Failed = connection errors + non-2xx answers. Target: 0 lost (" +
        verdict + ").",
        "",
        "| method | failed requests | requests during the run | failed share |",
        "|---|---|---|---|",
        *rows,
        "",
        "![requests per second through a release](bench-release.png)",
        "",
    ])
    return text, timelines


def chart(timelines: dict[str, list[tuple[int, int, int]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in timelines if timelines[n]]
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 2.2 * len(names)), sharex=False)
    for ax, name in zip(axes if len(names) > 1 else [axes], names, strict=True):
        series = timelines[name][1:-1] or timelines[name]  # partial first/last seconds
        t0 = series[0][0]
        xs = [t - t0 for t, _, _ in series]
        ax.plot(xs, [ok for _, ok, _ in series], label="2xx per second", color="tab:green")
        ax.plot(xs, [bad for _, _, bad in series], label="failed per second", color="tab:red")
        ax.set_title(name, fontsize=10)
        ax.set_ylabel("requests/s")
        ax.legend(fontsize=8, loc="center right")
    axes_list = axes if len(names) > 1 else [axes]
    axes_list[-1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


# ---- 2. deploy wall time, 3. rollback -----------------------------------------------------

def deploy_time(b: Bench) -> str:
    counts = [1, 10] if b.quick else [1, 10, 20]
    rows = []
    per_n: dict[int, dict[str, list[float]]] = {}
    tags = {"goship": "v1.0.0", "ansible": "v1.0.0", "ansible-tuned": "v1.0.0",
            "pyinfra": "v1.0.0"}

    def flip(k: str) -> str:
        tags[k] = "v2.0.0" if tags[k] == "v1.0.0" else "v1.0.0"
        return tags[k]

    for n in counts:
        b.lab(n)
        tools: dict[str, Callable[[], None]] = {
            "goship": lambda n=n: b.goship_deploy(n, flip("goship")),
            "Ansible (defaults: 5 forks)": lambda n=n: b.ansible(n, flip("ansible"), False),
            "Ansible (forks=20, pipelining, ControlPersist)":
                lambda n=n: b.ansible(n, flip("ansible-tuned"), True),
            "pyinfra": lambda n=n: b.pyinfra(n, flip("pyinfra")),
        }
        for fn in tools.values():  # first install on fresh hosts, not timed
            fn()
        times: dict[str, list[float]] = {k: [] for k in tools}
        for _ in range(b.runs):
            for name, fn in tools.items():
                times[name].append(timed(fn))
        per_n[n] = times
        for name, ts in times.items():
            ratio = [t / g for t, g in zip(ts, times["goship"], strict=True)]
            rows.append(f"| {n} | {name} | {Series(ts).show()} | "
                        f"{statistics.median(ratio):.1f}x |")
    g1 = statistics.median(per_n[1]["goship"])
    notes = []
    a1 = statistics.median(per_n[1]["Ansible (defaults: 5 forks)"])
    notes.append(f"1 host: Ansible/goship {a1 / g1:.1f}x (target >= 5x: "
                 f"{'met' if a1 / g1 >= 5 else 'MISSED'})")
    top = counts[-1]
    gt = statistics.median(per_n[top]["goship"])
    at = statistics.median(per_n[top]["Ansible (defaults: 5 forks)"])
    where = "" if top == 20 else f", measured at {top}"
    notes.append(f"{top} hosts: Ansible/goship {at / gt:.1f}x (target >= 3x at 20 hosts: "
                 f"{'met' if at / gt >= 3 else 'MISSED'}{where})")
    notes.append(f"{top} hosts in {gt / g1:.1f}x the 1-host time (target <= 2x: "
                 f"{'met' if gt / g1 <= 2 else 'MISSED'})")
    return "\n".join([
        "## 2. Deploy wall time (no Go build)",
        "",
        "The same prebuilt release archive shipped to N lab hosts, two releases alternating. "
        "goship: upload (skipped when the release is there), verify, start on the other color, "
        "health gate, switch nginx, drain, stop the old color, record. Ansible and pyinfra: "
        "copy the archive, unpack, point current, install the unit, restart, wait for the "
        "port and /health (bench/ansible/deploy.yml, bench/pyinfra_deploy.py): fewer steps, "
        "and a restart in place. Ratio = tool / goship, pair by pair.",
        "",
        "| hosts | tool | wall time | ratio to goship |",
        "|---|---|---|---|",
        *rows,
        "",
        *[f"- {n}" for n in notes],
        "",
    ])


def rollback_time(b: Bench) -> str:
    """Inside the rollback window the old color still runs (a warm standby): a rollback is
    one health answer and a switch. After the window (deploy.rollback_window = 0 here, the
    old color stopped at once) it starts the old release again."""
    counts = [1, 10] if b.quick else [1, 20]
    rows = []
    for n in counts:
        b.lab(n)
        for window, env, target in (("inside the window", f"b{n}",
                                     0.5 if n == 1 else 1.5),
                                    ("after the window", f"c{n}", None)):
            b.goship_deploy(n, "v1.0.0", env)
            b.goship_deploy(n, "v2.0.0", env)
            # Each rollback leaves the release it left as the standby: runs alternate.
            ts = [timed(lambda env=env: sh(*GOSHIP, "rollback", env, cwd=b.project))
                  for _ in range(b.runs + 1)]
            s = Series(ts)
            verdict = "" if target is None else \
                f"{target:g} s | {'met' if s.median <= target else 'MISSED'}"
            rows.append(f"| {n} | {window} | {s.show()} | {verdict or '- | -'} |")
    return "\n".join([
        "## 3. Rollback",
        "",
        "`goship rollback` wall time (the CLI, connection included), the previous release "
        "still on disk. Inside `deploy.rollback_window` (default 10 min) the old color still "
        "runs, unserved: one health answer and a Lua switch. After the window: start it on "
        "the other color, a quick health gate, switch, drain, stop. Rolling back again goes "
        "forward, so runs alternate.",
        "",
        "| hosts | when | wall time | target | |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ])


# ---- 4. proxy -----------------------------------------------------------------------------

HAPROXY_CFG = """global
    nbthread 2
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend bench
    bind 127.0.0.1:%(listen)d
    default_backend app
backend app
    server app 127.0.0.1:%(port)d
"""
CADDYFILE = """{
    admin off
    auto_https off
}
:%(listen)d {
    reverse_proxy 127.0.0.1:%(port)d
}
"""


def _other_proxies(run: Path, app_port: int, h_port: int,
                   c_port: int) -> list[subprocess.Popen[bytes]]:
    """HAProxy (2 threads, as nginx has 2 workers; server keepalive is its default, no log)
    and Caddy (reverse_proxy, its defaults: keepalive, no access log), Debian's packages."""
    (run / "haproxy.cfg").write_text(HAPROXY_CFG % {"listen": h_port, "port": app_port})
    (run / "Caddyfile").write_text(CADDYFILE % {"listen": c_port, "port": app_port})
    caddy_env = {**os.environ, "HOME": str(run), "XDG_DATA_HOME": str(run / "caddy"),
                 "XDG_CONFIG_HOME": str(run / "caddy")}
    return [
        subprocess.Popen(["haproxy", "-db", "-f", str(run / "haproxy.cfg")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen(["caddy", "run", "--config", str(run / "Caddyfile"), "--adapter",
                          "caddyfile"], env=caddy_env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL),
    ]


def _cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (all their threads), from /proc."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def proxy(b: Bench) -> str:
    from goship.config import parse
    from goship.render.context import Paths
    from goship.render.kinds import nginx_main_conf, nginx_site_conf

    binary = b.tmp / "proxy-app"
    shutil.copy(next((b.project / "dist").rglob("linux_amd64/bench-app")), binary)
    app_port, g_port, g_plain_port, a_port = 18901, 18902, 18903, 18904
    h_port, c_port = 18905, 18906
    app = subprocess.Popen([str(binary)], cwd=EXAMPLE, env={"PORT": str(app_port),
                                                           "GIN_MODE": "release"},
                           stdout=subprocess.DEVNULL)
    run = b.tmp / "proxy-nginx"
    (run / "nginx-tmp").mkdir(parents=True)
    paths = Paths(str(b.tmp / "srv"), "bench-app")
    Path(paths.run_dir).mkdir(parents=True)

    def site(listen: int, lua: bool) -> str:
        cfg = parse({"app": {"name": "bench-app" if lua else "bench-plain"},
                     "run": {"base_port": app_port}, "proxy": {"listen": listen}}).base
        text = nginx_site_conf(cfg, paths, "blue", "v1", access_log=str(run / "access.log"),
                               lua=lua, system=False)
        return text.replace(" default_server", "")

    sites = site(g_port, True) + site(g_plain_port, False) + \
        ARTICLE_SITE % {"listen": a_port, "port": app_port}
    (run / "site.conf").write_text(sites)
    cfg = parse({"app": {"name": "bench-app"}}).base
    mods = ["/usr/lib/nginx/modules/ndk_http_module.so",
            "/usr/lib/nginx/modules/ngx_http_lua_module.so"]
    main = nginx_main_conf(cfg, paths, str(run), "/etc/nginx/mime.types", mods)
    # 2 workers whatever the core count: the same as HAProxy's 2 threads
    (run / "nginx.conf").write_text(re.sub(r"worker_processes \w+;", "worker_processes 2;",
                                           main.replace(paths.run_dir, str(run))))
    sh("nginx", "-c", str(run / "nginx.conf"), "-p", str(run), "-e", str(run / "err.log"))
    others = _other_proxies(run, app_port, h_port, c_port)
    time.sleep(1.5)
    haproxy_name = "HAProxy (keepalive, no log)"
    targets = {"direct to the service": app_port,
               "goship's nginx config (Lua routing on)": g_port,
               "goship's nginx config (no Lua)": g_plain_port,
               "the articles' nginx config": a_port,
               haproxy_name: h_port,
               "Caddy (reverse_proxy, no log)": c_port}
    # Whose CPU each row costs: the proxy's (nginx: its workers), the service's when direct.
    # CPU per request holds up on a busy shared machine far better than throughput does.
    master = int((run / "nginx.pid").read_text())
    whose = {name: ([app.pid] if port == app_port else [others[0].pid] if port == h_port
                    else [others[1].pid] if port == c_port else _children(master))
             for name, port in targets.items()}
    res: dict[str, list[tuple[float, float, float]]] = {k: [] for k in targets}
    cpu: dict[str, list[float]] = {k: [] for k in targets}
    try:
        for i in range(b.runs + 2):
            order = list(targets.items())
            for name, port in order if i % 2 == 0 else reversed(order):
                before = _cpu_seconds(whose[name])
                out = sh("wrk", "-t2", "-c32", "-d4s", "--latency",
                         f"http://127.0.0.1:{port}/api/items").stdout
                rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
                p50 = _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
                p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
                res[name].append((rps, p50, p99))
                served = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
                cpu[name].append((_cpu_seconds(whose[name]) - before) / served * 1e6)
    finally:
        sh("nginx", "-c", str(run / "nginx.conf"), "-p", str(run), "-e", str(run / "err.log"),
           "-s", "quit", check=False)
        for proc in [*others, app]:
            proc.terminate()
            proc.wait()
    rows = []
    direct_p50 = statistics.median(x[1] for x in res["direct to the service"])
    article_rps = [x[0] for x in res["the articles' nginx config"]]
    hap = res[haproxy_name]
    for name, xs in res.items():
        rps = Series([x[0] for x in xs])
        p50 = Series([x[1] for x in xs])
        p99 = Series([x[2] for x in xs])
        ratio = statistics.median(x[0] / a for x, a in zip(xs, article_rps, strict=True))
        vs_hap = statistics.median(x[0] / h[0] for x, h in zip(xs, hap, strict=True))
        rows.append(f"| {name} | {rps.show('req/s', '{:.0f}')} | {p50.show('ms')} | "
                    f"{p99.show('ms')} | {ratio:.2f}x | {vs_hap:.2f}x | "
                    f"{Series(cpu[name]).show('us', '{:.1f}')} |")
    g = res["goship's nginx config (Lua routing on)"]
    over = statistics.median(x[1] for x in g) / direct_p50 - 1
    thr = statistics.median(x[0] / a for x, a in zip(g, article_rps, strict=True))
    h_thr = statistics.median(x[0] / h[0] for x, h in zip(g, hap, strict=True))
    h_p50 = statistics.median(x[1] / h[1] for x, h in zip(g, hap, strict=True)) - 1
    return "\n".join([
        "## 4. Proxy",
        "",
        "wrk (2 threads, 32 connections, 4 s, loopback) against the example service "
        "directly, through one nginx (2 workers) holding three sites: goship's config "
        "with its Lua routing (balancer and canary chain, JSON access log), goship's config "
        "without Lua, and the articles' config (plain proxy_pass: a new upstream connection "
        "per request, default access log); and through HAProxy (2 threads) and Caddy, "
        "Debian's packages with their defaults (upstream keepalive, no access log). "
        "Runs in turn, the order reversed every other round.",
        "",
        "| path | throughput | p50 | p99 | throughput / articles' | throughput / HAProxy | "
        "CPU / request (proxy; direct: the service) |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"- goship (Lua) p50 over direct: {over:+.0%} (target <= +15%: "
        f"{'met' if over <= 0.15 else 'MISSED'})",
        f"- goship (Lua) throughput over the articles' config: {thr:.2f}x (target >= 1.5x: "
        f"{'met' if thr >= 1.5 else 'MISSED'})",
        f"- goship (Lua, routing and JSON log on) against HAProxy: throughput {h_thr:.2f}x, "
        f"p50 {h_p50:+.0%} (target: within 10% on both: "
        f"{'met' if h_thr >= 0.9 and h_p50 <= 0.10 else 'MISSED'})",
        "",
    ])


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]


# ---- 5. build -----------------------------------------------------------------------------

def build(b: Bench) -> str:
    from goship.build.gitinfo import derive
    from goship.build.gobuild import ldflags
    from goship.config import load

    proj = load(b.project / "goship.toml")
    stamp = derive(b.project, "git", allow_dirty=False)
    flags = ldflags(proj.base.app.stamp, stamp)
    out = b.tmp / "plain" / "bench-app"
    go = ["go", "build", "-trimpath", "-mod=readonly", "-ldflags", flags, "-o", str(out), "."]
    env = {"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": "amd64"}

    def goship_build() -> None:
        sh(*GOSHIP, "build", "--skip-checks", cwd=b.project)

    def go_build() -> None:
        sh(*go, cwd=b.project, env=env)

    goship_build()
    go_build()
    runs = 3 if b.quick else 5
    g, p = [], []
    for _ in range(runs):
        g.append(timed(goship_build))
        p.append(timed(go_build))
    over = statistics.median(a - c for a, c in zip(g, p, strict=True))
    rows = [f"| warm: `goship build` | {Series(g).show()} |",
            f"| warm: `go build` with the same flags | {Series(p).show()} |"]
    if not b.quick:
        cache = b.tmp / "gocache"
        cold_g = timed(lambda: sh(*GOSHIP, "build", "--skip-checks", cwd=b.project,
                                  env={"GOCACHE": str(cache / "g")}))
        cold_p = timed(lambda: sh(*go, cwd=b.project, env={**env, "GOCACHE": str(cache / "p")}))
        rows += [f"| cold (empty GOCACHE): `goship build` | {cold_g:.1f} s |",
                 f"| cold (empty GOCACHE): `go build` | {cold_p:.1f} s |"]
    default_out = b.tmp / "plain" / "default"
    sh("go", "build", "-o", str(default_out), ".", cwd=b.project, env=env)
    sh(*GOSHIP, "package", "--skip-checks", "--image", cwd=b.project)
    image = next((b.project / "dist").rglob("*_image.tar"))
    upx = "not installed here" if shutil.which("upx") is None else "see `goship build` output"
    return "\n".join([
        "## 5. Build",
        "",
        "The example service. `goship build` includes its own work: git describe, the target "
        "check, ldflags, an atomic move into dist/ (checks skipped, as `go build` has none).",
        "",
        "| build | time |",
        "|---|---|",
        *rows,
        "",
        f"- warm overhead over `go build`: {over:+.2f} s, pair by pair (target <= 0.5 s: "
        f"{'met' if over <= 0.5 else 'MISSED'})",
        f"- binary size: default {default_out.stat().st_size / 2**20:.1f} MiB, "
        f"`-s -w` (goship) {out.stat().st_size / 2**20:.1f} MiB; UPX: {upx}",
        f"- image (`goship package --image`, one layer, uncompressed tar): "
        f"{image.stat().st_size / 2**20:.1f} MiB",
        "",
    ])


# ---- 6. CLI start-up -------------------------------------------------------------------------

def cli(b: Bench) -> str:
    b.lab(1)
    b.goship_deploy(1, "v1.0.0")
    b.ansible(1, "v1.0.0", tuned=False)
    runs = 5 if b.quick else 9
    v, py, st, an = [], [], [], []
    for _ in range(runs):
        v.append(timed(lambda: sh(*GOSHIP, "--version")))
        py.append(timed(lambda: sh(sys.executable, "-c", "pass")))
        st.append(timed(lambda: sh(*GOSHIP, "status", "b1", cwd=b.project)))
        an.append(timed(lambda: sh(str(BIN / "ansible"), "all", "-i", str(b.inventory(1)), "-m",
                                   "ansible.builtin.command", "-a",
                                   "systemctl is-active bench-ansible",
                                   env={"ANSIBLE_CONFIG": str(b.tmp / "ansible-default.cfg")})))
    vs = Series(v)
    return "\n".join([
        "## 6. CLI start-up",
        "",
        "| command | time |",
        "|---|---|",
        f"| `goship --version` | {vs.show('s', '{:.3f}')} |",
        f"| `python -c pass` (the floor of any Python CLI) | {Series(py).show('s', '{:.3f}')} |",
        f"| `goship status` on 1 host (release, instance health, nginx, journal) | "
        f"{Series(st).show()} |",
        f"| `ansible -m command -a 'systemctl is-active ...'` on 1 host | {Series(an).show()} |",
        "",
        f"- `goship --version` target <= 0.3 s: {'met' if vs.median <= 0.3 else 'MISSED'}",
        "",
    ])


# ---- 7. lab ---------------------------------------------------------------------------------

def lab(b: Bench) -> str:
    from goship.lab import hosts

    if b.lab_hosts:
        hosts.down()
        b.lab_hosts = 0
    rows = []
    for n in ([3] if b.quick else [3, 20]):
        ours_t, ours_m, ref_t, ref_m = [], [], [], []
        for _ in range(1 if b.quick else 2):
            t, m = _boot_once([*GOSHIP, "lab", "up", "--hosts", str(n)],
                              [*GOSHIP, "lab", "down"], n, "10.78.0")
            ours_t.append(t)
            ours_m.append(m)
            if REFERENCE_LAB.exists():
                t, m = _boot_once(["bash", str(REFERENCE_LAB), "up", str(n)],
                                  ["bash", str(REFERENCE_LAB), "down"], n, "10.77.0")
                ref_t.append(t)
                ref_m.append(m)
        rows.append(f"| {n} | goship lab | {Series(ours_t).show()} | "
                    f"{statistics.median(ours_m) / 1024:.0f} MiB |")
        if ref_t:
            rows.append(f"| {n} | lab-reference.sh | {Series(ref_t).show()} | "
                        f"{statistics.median(ref_m) / 1024:.0f} MiB |")
    return "\n".join([
        "## 7. Lab boot",
        "",
        "From `up` until every host's sshd answers; memory in use once every host reports "
        "`systemctl is-system-running` (MemAvailable before and after). The reference is the "
        "proof-of-concept script the lab grew from (chroot, shared cgroups); goship's hosts "
        "also get pivot_root, their own cgroup tree, machine id and known_hosts entries. "
        "Targets: 3 hosts in at most 5 s, 20 hosts in at most 4 GiB.",
        "",
        "| hosts | lab | boot | memory |",
        "|---|---|---|---|",
        *rows,
        "",
    ])


def kubelab(b: Bench) -> str:
    """`goship lab up --kubernetes` (components already built and cached) until every node
    is Ready (`up` returns then), and the memory the cluster holds."""
    from goship.lab import hosts

    if b.lab_hosts:
        hosts.down()
        b.lab_hosts = 0
    rows = []
    for n in [1, 3]:
        ts, ms = [], []
        for _ in range(1 if b.quick else 2):
            before = _mem_available()
            start = time.perf_counter()
            sh(*GOSHIP, "lab", "up", "--hosts", str(n), "--kubernetes")
            ts.append(time.perf_counter() - start)
            time.sleep(5)  # the control plane settles: memory after its start-up peak
            ms.append(before - _mem_available())
            sh(*GOSHIP, "lab", "down")
        rows.append(f"| {n} | {Series(ts).show()} | {statistics.median(ms) / 1024:.0f} MiB |")
    return "\n".join([
        "## 9. Kubernetes lab",
        "",
        "`goship lab up --hosts N --kubernetes` from no lab until every node is Ready (the "
        "components already built into ~/.cache/goship/kubernetes), and the memory in use "
        "5 s later (MemAvailable before and after: hosts, etcd, the control plane on h1, "
        "containerd, kubelet and kube-proxy on each node). kind, published: its "
        "documentation gives no start-up time or memory figure for a running cluster; its "
        "known-issues page asks for at least 8 GB of RAM for Docker to build a node image "
        "(kind's site/content/docs/user/known-issues.md), and `kind create cluster` needs a "
        "Docker engine and a node image that nothing here can pull.",
        "",
        "| nodes | up until Ready | memory |",
        "|---|---|---|",
        *rows,
        "",
    ])


def _boot_once(up: list[str], down: list[str], n: int, net: str) -> tuple[float, int]:
    before = _mem_available()
    start = time.perf_counter()
    sh(*up)
    elapsed = time.perf_counter() - start
    key = LAB_KEY if net == "10.78.0" else "/run/lab-ref/id_ed25519"
    for i in range(1, n + 1):
        addr = f"{net}.{10 + i}" if net == "10.78.0" else f"{net}.1{i}"
        sh("ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o",
           "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"root@{addr}",
           "systemctl is-system-running --wait", check=False, timeout=120)
    used = before - _mem_available()
    sh(*down)
    return elapsed, used


def _mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("no MemAvailable")


# ---- 8. canary ------------------------------------------------------------------------------

def canary(b: Bench) -> str:
    b.lab(1)
    b.goship_deploy(1, "v1.0.0")
    toml = b.project / "goship.toml"
    good = toml.read_text()
    rows = []
    for attempt in range(b.runs):
        toml.write_text(good + '[run.env]\nHELLO_TEST_ERROR_PERCENT = "20"\n')
        git(b.project, "commit", "-qam", f"bad {attempt}")
        git(b.project, "tag", f"v9.{attempt}.0-bad")
        load = Load("http://10.78.0.11/api/items")
        started = time.perf_counter()
        res = sh(*GOSHIP, "deploy", "b1", "--canary", "--skip-checks", "--json",
                 cwd=b.project, check=False)
        wall = time.perf_counter() - started
        r = load.stop()
        report = json.loads(res.stdout) if res.stdout.startswith("{") else {}
        # the same bad release as a plain blue-green deploy, found out and rolled back by a
        # person after 10 s
        load2 = Load("http://10.78.0.11/api/items")
        sh(*GOSHIP, "deploy", "b1", "--skip-checks", cwd=b.project)
        time.sleep(10)
        sh(*GOSHIP, "rollback", "b1", cwd=b.project)
        r2 = load2.stop()
        rows.append((report.get("abort_seconds"), report.get("seconds"), wall,
                     100 * r["failed"] / max(1, r["requests"]),
                     100 * r2["failed"] / max(1, r2["requests"])))
        toml.write_text(good)
        git(b.project, "commit", "-qam", f"good {attempt}")
    lines = [f"| {i + 1} | {a:.2f} s | {s:.1f} s | {w:.1f} s | {f:.2f}% | {f2:.2f}% |"
             for i, (a, s, w, f, f2) in enumerate(rows) if a is not None]
    return "\n".join([
        "## 8. Canary",
        "",
        "A release that answers 500 to 20% of requests, under wrk load through nginx on h1. "
        "goship: `deploy --canary` (steps 10, 50, 100; fast guard every second): the time "
        "from the abort decision to weight 0 on every host, the time from the start of the "
        "canary walk to the abort, and the share of all requests that failed during the "
        "whole command (build and start included). Alternative: the same release deployed "
        "blue-green without a canary and rolled back by a person after 10 s.",
        "",
        "| run | decision to weight 0 | walk to abort | whole command | failed share "
        "(canary) | failed share (no canary, 10 s to roll back) |",
        "|---|---|---|---|---|---|",
        *lines,
        "",
    ])


# ---- main -----------------------------------------------------------------------------------

def machine() -> str:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB, Linux {platform.release()}"


MEASURES = ["release", "deploy", "rollback", "proxy", "build", "cli", "canary", "lab",
            "kubelab"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer runs and hosts")
    ap.add_argument("--only", action="append", choices=MEASURES)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/run needs root (it boots lab hosts)")
    chosen = args.only or MEASURES
    b = Bench(args.quick)
    sections: dict[str, str] = {}
    try:
        b.build_releases()
        for name in chosen:
            print(f"== {name}", file=sys.stderr, flush=True)
            started = time.monotonic()
            if name == "release":
                text, timelines = release_lost(b)
                chart(timelines, args.out.parent / "bench-release.png")
            else:
                text = {"deploy": deploy_time, "rollback": rollback_time, "proxy": proxy,
                        "build": build, "cli": cli, "canary": canary, "lab": lab,
                        "kubelab": kubelab}[name](b)
            sections[name] = text
            print(text, file=sys.stderr)
            print(f"({time.monotonic() - started:.0f}s)", file=sys.stderr, flush=True)
    finally:
        b.close()
    tools = {
        "goship": version([*GOSHIP, "--version"]), "go": version(["go", "version"]),
        "nginx": version(["nginx", "-v"]), "wrk": version(["wrk", "-v"]),
        "ansible-core": version([str(BIN / "ansible"), "--version"]),
        "pyinfra": version([str(BIN / "pyinfra"), "--version"]),
        "OpenSSH": version(["ssh", "-V"]),
        "HAProxy": version(["haproxy", "-v"]), "Caddy": version(["caddy", "version"]),
    }
    runs_note = ("1 run each: a quick pass, read the figures as indications" if args.quick
                 else "3 runs or more")
    text = "\n".join([
        "# Benchmarks",
        "",
        f"Written by `bench/run{' --quick' if args.quick else ''}` on "
        f"{time.strftime('%Y-%m-%d')}. Machine: {machine()}; lab hosts are network, mount "
        "and PID namespaces on it (see lab.md), so host counts share these 2 cores. "
        "Shared and noisy: pairs run in turn, medians with the min-max spread "
        f"({runs_note}), "
        "ratios pair by pair. Where goship misses a target, the line says MISSED.",
        "",
        "Tools: " + "; ".join(f"{k} `{v}`" for k, v in tools.items()),
        "",
        *[sections[k] for k in MEASURES if k in sections],
    ])
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
