"""How long a failed host takes to leave the load balancer that discovers
(`proxy.lb.discovery = "consul"`): the app on lab hosts h1 and h2 (one instance each), the
balancer on h3 (installed by `goship deploy`), a Consul cluster on the three
(`lab up --consul`), probes through the balancer from this machine. `goship lab stop h2`
powers h2 off; measured from then: the probes that failed, the last request the balancer
sent to h2 (its access log), and when Consul's passing list, as the balancer holds it, no
longer has h2; then `lab start h2` and when it is back. Writes its section into
docs/benchmarks.md (between markers).

    sudo .venv/bin/python -m bench.lb_failover [--runs 3]
"""

from __future__ import annotations

import json
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
    sh,
    ssh,
    standalone_args,
    write_section,
)

H2 = "10.78.0.12"
URL = "http://10.78.0.13/api/items"
APP = "bench-lb"
TOML = """
[app]
name = "bench-lb"
[app.stamp]
"main.version" = "{version}"
[build]
assets = ["templates", "static"]
[run]
base_port = 9700
drain_timeout = 1.0
[run.health]
interval = 0.2
[consul]
enabled = true
check_interval = "1s"
check_timeout = "1s"
[env.b]
lab = 2
[env.b.proxy.lb]
discovery = "consul"
hosts = ["h3"]
max_fails = 1
fail_timeout = "5s"
"""
# On h3: poll the balancer's list every 20 ms; print the time h2 left (or came back).
WATCH = ("while {neg} curl -s http://127.0.0.1/.goship/lb | grep -q '^peers:.*{h2}:'; "
         "do sleep 0.02; done; date +%s.%N")
BEGIN, END = "<!-- bench.lb_failover begin -->", "<!-- bench.lb_failover end -->"


class Probes:
    """Threads asking through the balancer until stopped: (ok, failed) counts."""

    def __init__(self, n: int = 4) -> None:
        self.ok = self.failed = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(URL, timeout=5) as r:
                    good = r.status == 200
            except OSError:
                good = False
            with self.lock:
                if good:
                    self.ok += 1
                else:
                    self.failed += 1
            time.sleep(0.01)

    def end(self) -> tuple[int, int]:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)
        return self.ok, self.failed


def last_to_h2(since: float) -> float:
    """Seconds after `since` of the last request h3's balancer sent (or tried) to h2."""
    text = ssh(3, f"cat /var/log/nginx/goship-{APP}-lb.access.log")
    last = since
    for line in text.splitlines():
        e = json.loads(line)
        if H2 in e["upstream_addr"] and float(e["msec"]) > last:
            last = float(e["msec"])
    return last - since


def one_run() -> dict[str, float]:
    probes = Probes()
    time.sleep(1.0)
    t0 = time.time()
    sh(*GOSHIP, "lab", "stop", "h2")
    left = float(ssh(3, WATCH.format(neg="", h2=H2)).strip()) - t0
    time.sleep(1.0)
    ok, failed = probes.end()
    tried = last_to_h2(t0)
    t1 = time.time()
    sh(*GOSHIP, "lab", "start", "h2")
    booted = time.time() - t1
    back = float(ssh(3, WATCH.format(neg="!", h2=H2)).strip()) - t1
    return {"left": left, "tried": tried, "failed": failed, "requests": ok + failed,
            "booted": booted, "back": back}


def main() -> None:
    args = standalone_args(__doc__, "lb_failover", 3)
    from goship.lab import hosts

    tmp = Path(tempfile.mkdtemp(prefix="goship-bench-lb-"))
    project = example_project(tmp / "app", TOML)
    runs = []
    try:
        hosts.down()
        hosts.up(3, consul=True)
        sh(*GOSHIP, "deploy", "b", "--skip-checks", cwd=project)
        for _ in range(args.runs):
            runs.append(one_run())
    finally:
        hosts.down()
        shutil.rmtree(tmp, ignore_errors=True)

    def col(key: str) -> Series:
        return Series([r[key] for r in runs])

    failed = ", ".join(f"{int(r['failed'])} of {int(r['requests'])}" for r in runs)
    text = "\n".join([
        BEGIN,
        "## A failed host leaving the load balancer that discovers",
        "",
        f"`python -m bench.lb_failover` on {time.strftime('%Y-%m-%d')}, {args.runs} runs: "
        "the app on lab hosts h1 and h2, the balancer on h3 (`proxy.lb.discovery = "
        "\"consul\"`, `max_fails = 1`, `fail_timeout = \"5s\"`), Consul servers on the three "
        "(checks every 1 s), 4 probes through the balancer every 10 ms. `goship lab stop "
        "h2` powers h2 off (every process ends; its address still answers, refusing "
        "connections). Times from then.",
        "",
        "Reading: the balancer stops sending to h2 after its first refused attempt (retried "
        "on h1, so no probe fails), and tries it again once per `fail_timeout` until Consul "
        "declares the node failed (its gossip failure detection: the lab tunes it for a LAN, "
        "lab.md) and the "
        "blocking query drops it. A host that boots again is back in the list once its "
        "agent rejoined and the instance's check passed.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| failed probes (of all, per run) | {failed} |",
        f"| last request sent to h2 | {col('tried').show()} |",
        f"| h2 out of the balancer's list (Consul) | {col('left').show()} |",
        f"| `lab start h2` | {col('booted').show()} |",
        f"| back in the list after the boot | {col('back').show()} |",
        "",
        END,
    ])
    write_section(args.out, BEGIN, END, text)
    print(text)


if __name__ == "__main__":
    main()
