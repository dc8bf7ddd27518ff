"""The one error hierarchy. The CLI turns each into one line and the exit code named here."""

from __future__ import annotations

# Exit codes, documented in docs/cli.md.
EXIT_OK = 0
EXIT_FAILED = 1  # a step failed while applying, or a check found problems
EXIT_USAGE = 2  # bad usage, bad config, or a missing prerequisite: nothing was changed
EXIT_NOT_YET = 3  # the capability is not built yet
EXIT_INTERNAL = 70  # a bug in goship: traceback in the debug log
EXIT_INTERRUPTED = 130


class GoshipError(Exception):
    """Base of every error goship expects. `hint` says how to fix it."""

    exit_code = EXIT_FAILED

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

    exit_code = EXIT_USAGE


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

    exit_code = EXIT_NOT_YET

    def __init__(self, what: str, issue: int) -> None:
        super().__init__(
            f"not yet: {what} is not built yet (tracked in issue #{issue})",
            hint="see README.md for what works today",
        )


class ApplyError(GoshipError):
    """A step failed while changing something."""


class TransportError(ApplyError):
    """A host could not be reached or a command could not be run on it."""


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
