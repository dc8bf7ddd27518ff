"""The env file that holds a service's secrets: KEY=VALUE lines, as systemd's
EnvironmentFile= and docker's --env-file read them. Its values are never shown."""

from __future__ import annotations

from pathlib import Path

from goship.config.validators import ENV_VAR
from goship.errors import ConfigError


def parse_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "", "env file not found",
                          hint="create it (KEY=VALUE lines) or remove run.env_file") from None
    except IsADirectoryError:
        raise ConfigError(str(path), "", "run.env_file is a directory",
                          hint="point run.env_file at a file of KEY=VALUE lines") from None
    except UnicodeDecodeError as e:
        # The position only: the bytes around it may be a secret.
        at = path.read_bytes()[:e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{at}", "", "run.env_file is not UTF-8 text",
                          hint="save it as UTF-8") from None
    except OSError as e:
        raise ConfigError(str(path), "", f"run.env_file cannot be read ({e.strerror})",
                          hint="make it readable by the user running goship") from None
    if "\0" in text:  # no environment can carry it (C strings)
        at = text[:text.index("\0")].count("\n") + 1
        raise ConfigError(f"{path}:{at}", "", "a NUL byte in run.env_file", hint="remove it")
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key = key.strip()
        if not sep or not ENV_VAR.match(key):
            # Never echo the line: it may hold a secret.
            raise ConfigError(f"{path}:{n}", "", "expected KEY=VALUE",
                              hint="one variable per line; # starts a comment")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values
