"""Terminal output: one place that knows about --quiet and --verbose."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field


@dataclass
class Ui:
    verbosity: int = 0  # -1 quiet, 0 normal, 1+ verbose
    started: float = field(default_factory=time.monotonic)

    def out(self, text: str) -> None:
        """Results: always printed (they are what the user asked for)."""
        print(text, file=sys.stdout, flush=True)

    def info(self, text: str) -> None:
        if self.verbosity >= 0:
            print(text, file=sys.stderr, flush=True)

    def warn(self, text: str) -> None:
        print(f"warning: {text}", file=sys.stderr, flush=True)

    def debug(self, text: str) -> None:
        if self.verbosity >= 1:
            print(f"· {time.monotonic() - self.started:7.2f}s {text}", file=sys.stderr,
                  flush=True)


ui = Ui()
