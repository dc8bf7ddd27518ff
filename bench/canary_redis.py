"""How long a canary weight change takes to reach every host: canary.state = "redis" (one
write, every nginx polls) against the per-host push (the control socket of each host over
SSH), on N lab hosts (Redis on one more). A probe per host asks for the same client id
every 10 ms; the weight alternates 0 and 100, so each host's answer flips when it applied
the change. Writes its section into docs/benchmarks.md (between markers).

    sudo .venv/bin/python -m bench.canary_redis [--hosts 3,10] [--runs 5]
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench.suite import (
    GOSHIP,
    Series,
    example_project,
    git,
    sh,
    ssh,
    standalone_args,
    write_section,
)

PORT = 8089
TOML = """
[app]
name = "bench-canary-redis"
[app.stamp]
"main.version" = "{version}"
[build]
assets = ["templates", "static"]
[run]
base_port = 9600
drain_timeout = 1.0
[run.health]
interval = 0.2
[proxy]
listen = %d
[canary]
state = "%s"
redis = "redis://10.78.0.%d:6379/0"
[env.b]
lab = %d
"""
NOTE = (
    "Reading: both are dominated by what the command does before the change (Python start, "
    "an SSH connection to every host and reading its state, on 2 cores "
    "for 10 lab hosts and the probes). After that, push reaches all hosts within tens of "
    "ms of "
    "each other; Redis spreads them over the poll period (up to 1 s) and "
    "needs no connection to a host to apply a change, so a host the deploying machine "
    "cannot reach still follows, and a restarted nginx follows the latest write. Not "
    "measured: a set-weight that skips the hosts (reading the rules from Redis), which "
    "would take the SSH connections out of the Redis column."
)
BEGIN, END = "<!-- bench.canary_redis begin -->", "<!-- bench.canary_redis end -->"


def probes(n: int, want: str, started: float,
           stop: threading.Event) -> tuple[list[float], list[threading.Thread]]:
    """Seconds after `started` at which each of hosts h1..hN first answers `want` (filled
    in by the threads returned)."""
    got = [float("nan")] * n

    def probe(i: int) -> None:
        req = urllib.request.Request(f"http://10.78.0.{11 + i}:{PORT}/version",
                                     headers={"Cookie": "goship_id=bench-probe"})
        while not stop.is_set():
            try:
                with urllib.request.urlopen(req, timeout=2) as r:  # noqa: S310 (http://)
                    if r.headers["X-Goship-Track"] == want:
                        got[i] = time.perf_counter() - started
                        return
            except OSError:
                pass
            time.sleep(0.01)

    threads = [threading.Thread(target=probe, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    return got, threads


def measure(project: Path, n: int, state: str, runs: int) -> dict[str, Series]:
    (project / "goship.toml").write_text(TOML % (PORT, state, 11 + n, n))
    git(project, "commit", "-qam", f"{state} {n}", "--allow-empty")
    sh(*GOSHIP, "deploy", "b", "--skip-checks", cwd=project)
    (project / "static" / "bench.txt").write_text(f"{state} {n}\n")
    git(project, "add", ".")
    git(project, "commit", "-qm", f"canary {state} {n}")
    sh(*GOSHIP, "canary", "start", "b", "--weight", "0", "--skip-checks", cwd=project)
    first, last, wall = [], [], []
    try:
        for i in range(runs * 2):
            weight = "100" if i % 2 == 0 else "0"
            want = "canary" if weight == "100" else "stable"
            stop = threading.Event()
            started = time.perf_counter()
            got, threads = probes(n, want, started, stop)
            sh(*GOSHIP, "canary", "set-weight", "b", weight, cwd=project)
            wall.append(time.perf_counter() - started)
            for t in threads:
                t.join(timeout=30)
            stop.set()
            first.append(min(got))
            last.append(max(got))
    finally:
        sh(*GOSHIP, "canary", "abort", "b", cwd=project, check=False)
    return {"first": Series(first), "last": Series(last), "wall": Series(wall)}


def main() -> None:
    args = standalone_args(__doc__, "canary_redis", 5,
                           lambda ap: ap.add_argument("--hosts", default="3,10"))
    from goship.lab import hosts

    tmp = Path(tempfile.mkdtemp(prefix="goship-bench-canary-redis-"))
    project = example_project(tmp / "app", None)
    rows = []
    try:
        for n in (int(x) for x in args.hosts.split(",")):
            hosts.down()
            hosts.up(n + 1)
            ssh(n + 1, "systemd-run --unit=bench-redis --collect redis-server --port 6379 "
                       "--bind 0.0.0.0 --protected-mode no --save '' --appendonly no")
            for state in ("push", "redis"):
                got = measure(project, n, state, args.runs)
                rows.append(f"| {n} | {state} | {got['first'].show()} | {got['last'].show()} "
                            f"| {got['wall'].show()} |")
    finally:
        hosts.down()
        shutil.rmtree(tmp, ignore_errors=True)
    text = "\n".join([
        BEGIN,
        "## Canary weight: Redis against per-host pushes",
        "",
        f"`python -m bench.canary_redis` on {time.strftime('%Y-%m-%d')}, {args.runs} changes "
        "each way (0 to 100 and back) per row, on N lab hosts (Redis on one more lab host, "
        "no persistence). A probe per host asks every 10 ms for the same client id; a host "
        "applied the change when its answer flips. Times from the start of `goship canary "
        "set-weight` (a new process: Python start and SSH connection included). push: the "
        "control socket of every host over SSH, in parallel (deploy.concurrency). redis: "
        "one write, each nginx polls once a second; the command returns once every host "
        "reports the new version (read over SSH).",
        "",
        NOTE,
        "",
        "| hosts | canary.state | first host applied | last host applied | command |",
        "|---|---|---|---|---|",
        *rows,
        "",
        END,
    ])
    write_section(args.out, BEGIN, END, text)
    print(text)


if __name__ == "__main__":
    main()
