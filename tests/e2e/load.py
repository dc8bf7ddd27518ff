"""A steady load from wrk on this machine, stopped on demand, with its counts parsed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pytest


@dataclass
class LoadResult:
    requests: int
    errors: int  # connect + read + write + timeout
    non2xx: int
    text: str

    @property
    def failed(self) -> int:
        return self.errors + self.non2xx


def parse_wrk(text: str) -> LoadResult:
    req = re.search(r"(\d+) requests in", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     text)
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return LoadResult(
        requests=int(req.group(1)) if req else 0,
        errors=sum(int(x) for x in sock.groups()) if sock else 0,
        non2xx=int(non.group(1)) if non else 0,
        text=text,
    )


class Load:
    """`with Load(url) as load: ...` then `load.result`."""

    def __init__(self, url: str, connections: int = 16, max_seconds: int = 1800,
                 pace_ms: int = 0) -> None:
        """pace_ms: each connection waits that long between a response and its next request
        (a steady rate instead of as fast as the machine goes), for a test whose point is
        routing rather than throughput: two unpaced loads at once leave a 2-core machine no
        time for anything else, and the tail latency measures the machine, not goship."""
        self.url = url
        self.argv = ["wrk", "-t2", f"-c{connections}", f"-d{max_seconds}s", "--timeout", "5s",
                     "--latency", url]
        self.script: Path | None = None
        if pace_ms:
            fd, name = tempfile.mkstemp(suffix=".lua", prefix="goship-load-")
            os.close(fd)
            self.script = Path(name)
            self.script.write_text(f"function delay() return {int(pace_ms)} end\n")
            self.argv[-1:-1] = ["-s", name]
        self.proc: subprocess.Popen[str] | None = None
        self.result = LoadResult(0, 0, 0, "")

    def __enter__(self) -> Load:
        if subprocess.run(["which", "wrk"], capture_output=True, check=False).returncode:
            pytest.skip("wrk is not installed")
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        time.sleep(1.0)  # load is steady before anything changes
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        assert self.proc is not None
        time.sleep(1.0)  # and still steady after
        self.proc.send_signal(signal.SIGINT)  # wrk stops and prints its totals
        out, _ = self.proc.communicate(timeout=30)
        self.result = parse_wrk(out)
        if self.script is not None:
            self.script.unlink()
