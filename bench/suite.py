"""goship measured side by side with the alternative, pairs run in turn (A B A B ...).

What exists today: CLI start-up and lab boot. The rest of the suite (requests lost during a
release, deploy and rollback wall time against Ansible and pyinfra, proxy, build, canary)
lands with the capabilities it measures (issue #8)."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOSHIP = [str(REPO / ".venv" / "bin" / "goship")]
REFERENCE_LAB = REPO.parent / "shared" / "lab-reference.sh"


@dataclass
class Series:
    name: str
    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def spread(self, unit: str, fmt: str = "{:.3f}") -> str:
        return (f"{fmt.format(self.median)} {unit} "
                f"({fmt.format(min(self.values))}-{fmt.format(max(self.values))})")


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def pairs(a: Callable[[], float], b: Callable[[], float], runs: int) -> tuple[list[float],
                                                                             list[float]]:
    xs, ys = [], []
    for _ in range(runs):
        xs.append(a())
        ys.append(b())
    return xs, ys


def mem_available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("no MemAvailable")


def cli_startup(runs: int) -> str:
    py = [sys.executable, "-c", "pass"]
    g, p = pairs(lambda: timed([*GOSHIP, "--version"]), lambda: timed(py), runs)
    ratios = [a / b for a, b in zip(g, p, strict=True)]
    gs, ps = Series("goship --version", g), Series("python -c pass", p)
    target = "met" if gs.median <= 0.3 else "MISSED"
    return "\n".join([
        "## CLI start-up",
        "",
        "`goship --version` against the bare interpreter it runs on (the floor any Python CLI "
        f"pays), {runs} pairs in turn. Target: at most 0.3 s ({target}).",
        "",
        "| command | median (min-max) |",
        "|---|---|",
        f"| `goship --version` | {gs.spread('s')} |",
        f"| `python -c pass` | {ps.spread('s')} |",
        f"| ratio goship / python, pair by pair | {statistics.median(ratios):.2f}x |",
        "",
    ])


def lab_boot(counts: list[int], runs: int) -> str:
    if os.geteuid() != 0:
        return "## Lab\n\nSkipped: the lab needs root.\n"
    rows = []
    for n in counts:
        ours_t, ours_m, ref_t, ref_m = [], [], [], []
        for _ in range(runs):
            t, m = _boot_once([*GOSHIP, "lab", "up", "--hosts", str(n)], [*GOSHIP, "lab", "down"],
                              n, "10.78.0")
            ours_t.append(t)
            ours_m.append(m)
            if REFERENCE_LAB.exists():
                t, m = _boot_once(["bash", str(REFERENCE_LAB), "up", str(n)],
                                  ["bash", str(REFERENCE_LAB), "down"], n, "10.77.0")
                ref_t.append(t)
                ref_m.append(m)
        o = Series("goship", ours_t)
        rows.append(f"| {n} | goship lab | {o.spread('s', '{:.2f}')} | "
                    f"{statistics.median(ours_m) / 1024:.0f} MiB |")
        if ref_t:
            r = Series("reference", ref_t)
            rows.append(f"| {n} | lab-reference.sh | {r.spread('s', '{:.2f}')} | "
                        f"{statistics.median(ref_m) / 1024:.0f} MiB |")
    return "\n".join([
        "## Lab boot",
        "",
        "Time from `up` until every host's sshd answers, and memory in use once every host "
        "reports `systemctl is-system-running` (MemAvailable before and after). The "
        "reference is the proof-of-concept script the lab grew from; goship's hosts also get "
        "their own cgroup tree, machine id and known_hosts entries. Targets: 3 hosts in at "
        "most 5 s, 20 hosts in at most 4 GiB.",
        "",
        "| hosts | lab | boot median (min-max) | memory |",
        "|---|---|---|---|",
        *rows,
        "",
    ])


def _boot_once(up: list[str], down: list[str], n: int, net: str) -> tuple[float, int]:
    before = mem_available_kib()
    start = time.perf_counter()
    subprocess.run(up, check=True, capture_output=True)
    elapsed = time.perf_counter() - start
    key = "/run/goship-lab/id_ed25519" if net == "10.78.0" else "/run/lab-ref/id_ed25519"
    for i in range(1, n + 1):
        subprocess.run(["ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o",
                        "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                        f"root@{net}.1{i}" if net == "10.77.0" else f"root@{net}.{10 + i}",
                        "systemctl is-system-running --wait"], capture_output=True,
                       timeout=120, check=False)
    used = before - mem_available_kib()
    subprocess.run(down, check=True, capture_output=True)
    return elapsed, used


def machine() -> str:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    return (f"{os.cpu_count()} cores ({cpu}), {mem} GiB, Linux {platform.release()}, "
            f"Python {platform.python_version()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer runs and hosts")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = ap.parse_args()
    runs = 3 if args.quick else 7
    sections = [cli_startup(runs * 3),
                lab_boot([3] if args.quick else [3, 20], 1 if args.quick else 3)]
    text = "\n".join([
        "# Benchmarks",
        "",
        f"Written by `bench/run{' --quick' if args.quick else ''}` on "
        f"{time.strftime('%Y-%m-%d')}. Machine: {machine()}. Shared and noisy: pairs run "
        "in turn, medians with the min-max spread, ratios pair by pair.",
        "",
        "Not measured yet, because the capability is not built yet (issue #8 lists them): "
        "requests lost during a release, deploy and rollback wall time against Ansible and "
        "pyinfra, proxy throughput and latency, build, canary.",
        "",
        *sections,
    ])
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
