"""Commands as values: every argument quoted, secrets masked whenever a command is shown."""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field

MASK = "******"


@dataclass(frozen=True)
class Cmd:
    """An argv to run on a host. `shell()` is what a remote shell receives; `display()` is
    what a person sees, with every secret value replaced by a mask."""

    argv: tuple[str, ...]
    secrets: frozenset[str] = field(default_factory=frozenset)
    sudo: bool = False
    stdin: bytes | None = None

    @classmethod
    def of(cls, *argv: str, secrets: Iterable[str] = (), sudo: bool = False) -> Cmd:
        if not argv:
            raise ValueError("a command needs at least one argument")
        return cls(tuple(argv), frozenset(s for s in secrets if s), sudo)

    @classmethod
    def script(cls, script: str, *, secrets: Iterable[str] = (), sudo: bool = False) -> Cmd:
        """A fixed POSIX sh script. Values must be passed in already quoted with `q()`."""
        return cls(("sh", "-c", script), frozenset(s for s in secrets if s), sudo)

    def with_stdin(self, data: bytes) -> Cmd:
        return Cmd(self.argv, self.secrets, self.sudo, data)

    def full_argv(self) -> tuple[str, ...]:
        # -n: never prompt for a password; a deploy must fail rather than hang.
        return ("sudo", "-n", "--", *self.argv) if self.sudo else self.argv

    def shell(self) -> str:
        return shlex.join(self.full_argv())

    def display(self) -> str:
        argv = self.full_argv()
        if len(argv) >= 4 and argv[-len(self.argv):][:2] == ("sh", "-c") and \
                argv[-len(self.argv):][3].startswith("goship-"):
            # goship's own scripts are shown by name with their arguments.
            prefix = argv[:len(argv) - len(self.argv)]
            argv = (*prefix, *self.argv[3:])
        return mask(shlex.join(argv), self.secrets)

    def __str__(self) -> str:  # never leak a secret through an f-string
        return self.display()


def q(value: str) -> str:
    """Quote one value for a POSIX shell."""
    return shlex.quote(value)


def mask(text: str, secrets: Iterable[str]) -> str:
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
        quoted = shlex.quote(secret)
        if quoted != secret:
            text = text.replace(quoted, MASK)
    return text
