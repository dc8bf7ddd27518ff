"""build.before: the project's own steps (a front-end build, code generation) run before
`go build`, in the project directory, through `sh -c`, their output streamed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from goship.errors import ApplyError


def run_steps(root: Path, steps: list[str], env: dict[str, str] | None = None) -> None:
    for i, command in enumerate(steps):
        prefix = f"[before {i + 1}] "
        sys.stderr.write(f"{prefix}$ {command}\n")
        sys.stderr.flush()
        proc = subprocess.Popen(["sh", "-c", command], cwd=root, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})})
        for raw in proc.stdout or []:
            sys.stderr.write(prefix + raw.decode("utf-8", "replace").rstrip("\n") + "\n")
            sys.stderr.flush()
        code = proc.wait()
        if code != 0:
            raise ApplyError(f"build.before[{i}] `{command}` exited {code} (its output is "
                             "above); nothing was built")
