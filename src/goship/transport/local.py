"""This machine."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from goship.command import Cmd
from goship.errors import CommandTimedOut
from goship.transport.base import Result, Transport
from goship.ui import ui


class LocalTransport(Transport):
    def __init__(self, name: str = "local") -> None:
        self.name = name

    def run(self, cmd: Cmd, *, timeout: float = 120.0) -> Result:
        ui.debug(f"{self.name}: {cmd.display()}")
        try:
            res = subprocess.run(list(cmd.full_argv()), input=cmd.stdin, capture_output=True,
                                 timeout=timeout, check=False)
        except FileNotFoundError:
            return Result(127, "", f"{cmd.argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            raise CommandTimedOut(self.name, cmd.display(), timeout) from None
        return Result(res.returncode, res.stdout.decode(errors="replace"),
                      res.stderr.decode(errors="replace"))

    def put(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        target = Path(path)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".goship-put.")
        try:
            os.fchmod(fd, mode)  # before any byte is written: a secret is never world-readable
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, path: str) -> bytes:
        return Path(path).read_bytes()
