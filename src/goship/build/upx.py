"""Optional UPX packing, measured: size, start-up time and resident memory before and after,
and proof the packed binary still runs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from goship.build.gobuild import Built
from goship.errors import ApplyError

NEVER = ("darwin", "windows")  # UPX breaks code signing on macOS and trips Windows scanners


@dataclass
class Measure:
    size: int
    start_seconds: float | None
    rss_kib: int | None


@dataclass
class Packed:
    before: Measure
    after: Measure


def available() -> bool:
    return shutil.which("upx") is not None


def measure(binary: Path, port_env: str, health: str, workdir: Path) -> Measure:
    """Start the service on a free port, time it until health answers, read its RSS."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, port_env: str(port)}
    started = time.monotonic()
    proc = subprocess.Popen([str(binary)], cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = started + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ApplyError(f"{binary.name} exited {proc.returncode} at start-up")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{health}", timeout=1):
                    break
            except OSError:
                time.sleep(0.01)
        else:
            return Measure(binary.stat().st_size, None, None)
        elapsed = time.monotonic() - started
        rss = None
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        return Measure(binary.stat().st_size, elapsed, rss)
    finally:
        proc.kill()
        proc.wait()


def pack(built: Built, *, can_run: bool, port_env: str, health: str,
         workdir: Path) -> Packed:
    before = measure(built.path, port_env, health, workdir) if can_run else \
        Measure(built.size, None, None)
    res = subprocess.run(["upx", "-q", "--best", str(built.path)], capture_output=True,
                         text=True, check=False)
    if res.returncode != 0:
        raise ApplyError(f"upx failed for {built.target}: {res.stderr.strip()}")
    test = subprocess.run(["upx", "-t", str(built.path)], capture_output=True, text=True,
                          check=False)
    if test.returncode != 0:
        raise ApplyError(f"upx -t failed for {built.target}: {test.stderr.strip()}")
    after = measure(built.path, port_env, health, workdir) if can_run else \
        Measure(built.path.stat().st_size, None, None)
    return Packed(before, after)
