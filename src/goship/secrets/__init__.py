"""Secrets from a manager: a sops-encrypted run.env_file and `[secrets]` commands, both
resolved on the deploying machine into memory only (docs/secrets.md)."""

from __future__ import annotations

from pathlib import Path

from goship.config.model import Config
from goship.envfile import parse_env_file
from goship.secrets import command, sops


def env_file_values(root: Path, config: Config) -> dict[str, str]:
    """run.env_file's values: a sops file decrypted (in memory), a plain one read."""
    if not config.run.env_file:
        return {}
    path = root / config.run.env_file
    kind = sops.detect_file(path)
    if kind is None:
        return parse_env_file(path)
    return sops.decrypt(path, kind, config.run.env_file)


def env_file_names(root: Path, config: Config) -> list[str]:
    """run.env_file's variable names, read without decrypting (sops keeps names clear)."""
    if not config.run.env_file:
        return []
    path = root / config.run.env_file
    if not path.exists():
        return []
    kind = sops.detect_file(path)
    if kind is None:
        return sorted(parse_env_file(path))
    return sops.names(path, kind)


def resolve(root: Path, config: Config) -> dict[str, str]:
    """The service's environment: run.env, then run.env_file, then each `[secrets]`
    command's output (later wins). Runs the commands: call it before touching any host."""
    values = dict(config.run.env)
    values.update(env_file_values(root, config))
    for name, secret in config.secrets.items():
        values[name] = command.run(name, secret.command, secret.timeout, cwd=root)
    return values


def secret_names(root: Path, config: Config) -> list[str]:
    """Every name whose value is a secret by its source: run.env_file's and `[secrets]`'."""
    return sorted({*env_file_names(root, config), *config.secrets})
