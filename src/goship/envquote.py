"""An environment value quoted for each file that carries one, by the rules of the program
that reads it. One function per syntax; a value a syntax cannot carry raises ValueError
(never a silently different value, never an injected line).

Each is tested against the real reader where it runs here (tests/unit/test_envquote.py,
tests/e2e/test_render_tools.py)."""

from __future__ import annotations

import shlex

# systemd's env-file parser (EnvironmentFile=): inside double quotes a backslash escapes
# these and is kept before anything else; newlines are kept as they are.
_SYSTEMD_ESCAPE = '\\"`$'
_SYSTEMD_BARE = frozenset("._-/:@+,=")
# PowerShell closes a single-quoted string at any of these (the typographic ones too).
_PS_QUOTES = "'\u2018\u2019\u201a\u201b"


def _no_nul(value: str, syntax: str) -> None:
    if "\0" in value:
        raise ValueError(f"a NUL byte cannot be in an environment value ({syntax})")


def systemd(value: str) -> str:
    """A value of a systemd EnvironmentFile= line (KEY=VALUE)."""
    _no_nul(value, "systemd")
    if value and all(c.isascii() and (c.isalnum() or c in _SYSTEMD_BARE) for c in value):
        return value
    return '"' + "".join("\\" + c if c in _SYSTEMD_ESCAPE else c for c in value) + '"'


def dockerfile(value: str) -> str:
    """A value of a Dockerfile ENV instruction (default escape character). A Dockerfile
    instruction is one line: a newline cannot be carried."""
    _no_nul(value, "Dockerfile")
    if "\n" in value or "\r" in value:
        raise ValueError("a newline cannot be in a Dockerfile ENV value")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def sh(value: str) -> str:
    """A POSIX shell word: single quotes, nothing inside expanded."""
    _no_nul(value, "sh")
    return shlex.quote(value)


def supervisord(value: str) -> str:
    """A value of supervisord's environment=KEY=VALUE: its parser has no escapes (a quoted
    token ends at the next quote of its kind, quotes at either end are stripped), and the
    file is read with %-interpolation."""
    _no_nul(value, "supervisord")
    if "\n" in value or "\r" in value:
        raise ValueError("a newline cannot be in a supervisord environment= value")
    if value[:1] in ("'", '"') or value[-1:] in ("'", '"'):
        raise ValueError("supervisord strips quotes at either end of an environment= value")
    quote = '"' if '"' not in value else "'"
    if quote in value:
        raise ValueError("supervisord cannot carry a value with both ' and \" quotes")
    return quote + value.replace("%", "%%") + quote


def powershell(value: str) -> str:
    """A PowerShell single-quoted string: nothing inside is expanded."""
    _no_nul(value, "PowerShell")
    return "'" + "".join(c + c if c in _PS_QUOTES else c for c in value) + "'"
