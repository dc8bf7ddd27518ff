"""The one error hierarchy. The CLI turns each into one line and the exit code named here."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Every exit code goship uses. `goship --help` and docs/cli.md list them from here."""

    OK = 0
    FAILED = 1
    USAGE = 2
    NOT_YET = 3
    LOCK_HELD = 4
    INTERNAL = 70
    INTERRUPTED = 130

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS = {
    ExitCode.OK: "success",
    ExitCode.FAILED: "failed while applying, or checks found problems (`doctor`)",
    ExitCode.USAGE: "usage error, config error or missing prerequisite (tool, root): "
                    "nothing was changed",
    ExitCode.NOT_YET: "the capability is not built yet: the message names the issue that "
                      "tracks it",
    ExitCode.LOCK_HELD: "another goship holds the deploy lock (the message names it; "
                        "`--wait` or `--force`)",
    ExitCode.INTERNAL: "internal error: a bug in goship; the traceback is in the debug log "
                       "named on stderr",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}

# The names the commands import.
EXIT_OK = ExitCode.OK
EXIT_FAILED = ExitCode.FAILED
EXIT_USAGE = ExitCode.USAGE
EXIT_NOT_YET = ExitCode.NOT_YET
EXIT_LOCK_HELD = ExitCode.LOCK_HELD
EXIT_INTERNAL = ExitCode.INTERNAL
EXIT_INTERRUPTED = ExitCode.INTERRUPTED


class GoshipError(Exception):
    """Base of every error goship expects. `hint` says how to fix it."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def line(self) -> str:
        """The single line the CLI prints."""
        if self.hint:
            return f"{self.message}; {self.hint}"
        return self.message


class UsageError(GoshipError):
    """Wrong arguments or a request that cannot be met as asked."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """goship.toml is wrong: names the file, the key path, what was expected and found."""

    def __init__(self, file: str, key: str, message: str, *, hint: str | None = None) -> None:
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {message}", hint=hint)
        self.file = file
        self.key = key


class ConfigErrors(UsageError):
    """Several problems in one file: one line each."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__(errors[0].line() if errors else "invalid configuration")
        self.errors = errors

    def line(self) -> str:
        return "\n".join(e.line() for e in self.errors)


class PrerequisiteError(UsageError):
    """Something goship needs is missing here: a tool, a privilege, a kernel feature."""


class NotYetError(GoshipError):
    """A capability that is planned but not built yet. Says so plainly instead of pretending."""

    exit_code = ExitCode.NOT_YET

    def __init__(self, what: str, issue: int) -> None:
        super().__init__(
            f"not yet: {what} is not built yet (tracked in issue #{issue})",
            hint="see README.md for what works today",
        )


class ApplyError(GoshipError):
    """A step failed while changing something."""


class TransportError(ApplyError):
    """A host could not be reached or a command could not be run on it."""


class Unreachable(TransportError):
    """No connection to the host: it did not answer, refused us, or its host key is not
    the one known_hosts trusts; or the connection was lost."""


class CommandTimedOut(TransportError):
    """A command did not finish within its timeout (it was stopped)."""

    def __init__(self, host: str, display: str, timeout: float) -> None:
        super().__init__(f"{host}: `{display}` timed out after {timeout:g}s")
        self.host = host
        self.timeout = timeout


class CommandFailed(TransportError):
    """A command ran and exited non-zero."""

    def __init__(self, host: str, display: str, code: int, output: str) -> None:
        tail = " | ".join(output.strip().splitlines()[-3:])
        msg = f"{host}: `{display}` exited {code}"
        super().__init__(f"{msg}: {tail}" if tail else msg)
        self.host = host
        self.code = code
        self.output = output


class LabError(ApplyError):
    """The lab could not do what was asked."""
