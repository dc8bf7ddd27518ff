"""The transport interface. Implementations: local (this machine), ssh (OpenSSH client with
one multiplexed connection per host), fake (records calls, for unit tests)."""

from __future__ import annotations

import abc
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from goship.command import Cmd
from goship.errors import CommandFailed


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.code == 0


class Transport(abc.ABC):
    """A host goship can act on. `name` is how the host is shown to people."""

    name: str

    @abc.abstractmethod
    def run(self, cmd: Cmd, *, timeout: float = 120.0) -> Result:
        """Run a command; never raises for a non-zero exit (see `check`)."""

    @abc.abstractmethod
    def put(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        """Write a file atomically (temp file, then rename) with the given mode."""

    @abc.abstractmethod
    def get(self, path: str) -> bytes:
        """Read a file."""

    def check(self, cmd: Cmd, *, timeout: float = 120.0) -> Result:
        res = self.run(cmd, timeout=timeout)
        if not res.ok:
            from goship.command import mask

            raise CommandFailed(self.name, cmd.display(), res.code,
                                mask(res.stderr or res.stdout, cmd.secrets))
        return res

    def run_all(self, cmds: Sequence[Cmd], *, timeout: float = 120.0) -> list[Result]:
        """Independent commands, answered in order as `run` answers each. Where the
        transport can (an SSH session), they leave together: one round trip for all."""
        return [self.run(c, timeout=timeout) for c in cmds]

    def later(self, cmd: Cmd, *, timeout: float = 120.0) -> None:
        """A command nobody needs the answer of right now (a record, a timer): a failure is
        raised by the next `settle`. Over SSH it leaves at once and its answer is read with
        the next command's, so a run of them costs one round trip."""
        res = self.run(cmd, timeout=timeout)
        if not res.ok:
            self._late(cmd, res)

    def put_later(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        """`put`, answered like `later`."""
        self.put(path, data, mode=mode)

    def settle(self) -> None:
        """Raise the first failure of the commands run `later` since the last settle."""
        failures: list[CommandFailed] = self.__dict__.pop("_late_failures", [])
        if failures:
            raise failures[0]

    def _late(self, cmd: Cmd, res: Result) -> None:
        from goship.command import mask

        self.__dict__.setdefault("_late_failures", []).append(
            CommandFailed(self.name, cmd.display(), res.code,
                          mask(res.stderr or res.stdout, cmd.secrets)))

    def stream(self, cmd: Cmd) -> subprocess.Popen[bytes]:
        """Start a long-running command (`tail -F`, `journalctl -f`); stdout is a pipe."""
        return subprocess.Popen(self.stream_argv(cmd), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def stream_argv(self, cmd: Cmd) -> list[str]:
        return list(cmd.full_argv())

    def close(self, *, wait: bool = True) -> None:  # noqa: B027 (most hold nothing)
        """Release the connection, if any (`wait=False`: this process is ending, do not
        wait for the remote side to finish closing)."""


# Stdin into a new file beside "$1" with mode "$2" ($tmp): created with its mode (umask) and
# O_EXCL (`set -C`: a planted symlink is never followed, as mktemp guarantees), so a write
# costs the host one `cat`, not mktemp, cat and chmod. One left by a killed run is replaced.
WRITE_TEMP = r"""dir=${1%/*}; dir=${dir:-/}; [ -d "$dir" ] || mkdir -p "$dir"
m=$((0$2)); tmp="$dir/.${1##*/}.goship.$$"
umask "$(printf '%o' $(((0666 ^ m) & 0666)))"
{ [ ! -e "$tmp" ] && [ ! -L "$tmp" ]; } || rm -f "$tmp"
set -C; cat > "$tmp"; set +C
[ $((m & 07111)) = 0 ] || chmod "$2" "$tmp"
"""

# $1 path  $2 mode (octal): stdin becomes the file, atomically
PUT_SCRIPT = 'set -e\n' + WRITE_TEMP + 'mv -f "$tmp" "$1"\n'
