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


def _own_script(argv: tuple[str, ...]) -> bool:
    """goship's own fixed scripts: `sh -c SCRIPT goship-NAME ARGS...` (values only ever
    arrive as arguments). A user's text (a hook) is never one."""
    return len(argv) >= 4 and argv[:2] == ("sh", "-c") and argv[3].startswith("goship-")


def subshell_text(argv: tuple[str, ...]) -> str:
    """`argv` as the text of a command the shell runs in a subshell of its own (a session's
    framed command). goship's own scripts run in that subshell after `set -- ARGS`, not in
    a new sh: a process fewer on the host for each (a rollback runs ~13 per host). Any other
    text (a user's hook) stays an argument of its own sh, where it cannot break the frame."""
    if _own_script(argv):
        return f"set -- {shlex.join(argv[4:])}\n{argv[2]}"
    return shlex.join(argv)


# Commands that leave nothing running behind them that could write to their stdout later.
_SETTLED = ("cat", "curl", "systemctl")


def output_direct(argv: tuple[str, ...]) -> bool:
    """Whether a session may pass the command's stdout straight through instead of through a
    file (one `cat` fewer on the host): only for commands that start nothing that outlives
    them (a daemon a user's command started could write into a later command's answer).
    The release command runs the user's command: never."""
    if argv[:3] == ("sudo", "-n", "--"):
        argv = argv[3:]
    return (bool(argv) and argv[0] in _SETTLED) or \
        (_own_script(argv) and argv[3] != "goship-release-command")


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
