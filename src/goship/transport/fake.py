"""A recording transport for unit tests: answers from a table, remembers every call."""

from __future__ import annotations

from collections.abc import Callable

from goship.command import Cmd
from goship.transport.base import Result, Transport

Answer = Result | Callable[[Cmd], Result]


class FakeTransport(Transport):
    def __init__(self, name: str = "fake", answers: dict[str, Answer] | None = None) -> None:
        self.name = name
        self.answers: dict[str, Answer] = dict(answers or {})
        self.calls: list[Cmd] = []
        self.files: dict[str, tuple[bytes, int]] = {}

    def run(self, cmd: Cmd, *, timeout: float = 120.0) -> Result:
        self.calls.append(cmd)
        shell = cmd.shell()
        # The longest matching prefix wins, so specific answers override general ones.
        for prefix in sorted(self.answers, key=len, reverse=True):
            if shell.startswith(prefix) or prefix in shell:
                answer = self.answers[prefix]
                return answer(cmd) if callable(answer) else answer
        return Result(127, "", f"fake: no answer for {shell}")

    def put(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        self.files[path] = (data, mode)

    def get(self, path: str) -> bytes:
        if path not in self.files:
            raise FileNotFoundError(path)
        return self.files[path][0]
