"""`[secrets] NAME = { command = "..." }`: a command run on the deploying machine (argv, no
shell), its stdout the value. Its output is never shown, even when it fails."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from goship.errors import ConfigError


def run(name: str, cmd: str, timeout: float, *, cwd: Path) -> str:
    argv = shlex.split(cmd)  # validated when goship.toml loaded
    key = f"secrets.{name}"
    try:
        res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                             timeout=timeout, cwd=cwd, check=False)
    except FileNotFoundError:
        raise ConfigError("goship.toml", key, f"command not found: {argv[0]}",
                          hint="install it or give its full path") from None
    except PermissionError:
        raise ConfigError("goship.toml", key, f"{argv[0]} cannot be run (permission denied)",
                          hint="make it executable") from None
    except subprocess.TimeoutExpired:
        raise ConfigError("goship.toml", key, f"{argv[0]} timed out after {timeout:g}s "
                                              f"(its output is not shown)",
                          hint=f"run it yourself, or raise secrets.{name}.timeout") from None
    return value(name, argv[0], res.returncode, res.stdout)


def value(name: str, program: str, code: int, out: bytes) -> str:
    """The secret from the command's exit status and stdout; every error names the secret
    and never holds the output."""
    key = f"secrets.{name}"
    if code != 0:
        status = f"exited {code}" if code > 0 else f"was killed by signal {-code}"
        raise ConfigError("goship.toml", key, f"{program} {status} (its output is not shown)",
                          hint="run the command yourself to see why")
    try:
        text = out.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("goship.toml", key, f"{program} printed something that is not "
                                              f"UTF-8 text",
                          hint="print the secret as text (base64 a binary one)") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise ConfigError("goship.toml", key, f"{program} printed nothing",
                          hint="check the command prints the secret on stdout")
    if "\0" in text:
        raise ConfigError("goship.toml", key, f"{program} printed a NUL byte",
                          hint="an environment value cannot hold one")
    return text
