"""The effective configuration as a person or a program reads it, secrets masked."""

from __future__ import annotations

import json
import re
from typing import Any

from goship import secrets
from goship.command import MASK
from goship.config.load import Environment, Project, is_secret_name
from goship.config.model import Config

# scheme://user:PASSWORD@host: the password, wherever a URL sits in a value
URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@,]*:)([^@/\s]+)(@)")
URL_MASK = "****"


def has_url_password(value: str) -> bool:
    return URL_PASSWORD.search(value) is not None


def mask_urls(data: Any) -> Any:
    """Every string in data with the passwords of the URLs in it masked."""
    if isinstance(data, str):
        return URL_PASSWORD.sub(lambda m: m.group(1) + URL_MASK + m.group(3), data)
    if isinstance(data, dict):
        return {k: mask_urls(v) for k, v in data.items()}
    if isinstance(data, list):
        return [mask_urls(v) for v in data]
    return data


def effective(project: Project, env: Environment | None) -> dict[str, Any]:
    config: Config = env.config if env else project.base
    data: dict[str, Any] = config.model_dump(mode="json")
    data["run"]["env"] = {k: (MASK if is_secret_name(k) else v)
                          for k, v in data["run"]["env"].items()}
    data["run"]["user"] = config.service_user
    data["app"]["binary"] = config.app.binary_name
    if config.run.env_file:
        # A sops file's names are read without decrypting it.
        keys = secrets.env_file_names(project.root, config)
        # The names are useful to check a deploy; the values are secrets, never shown.
        data["run"]["env_file_keys"] = dict.fromkeys(keys, MASK)
    if env is not None:
        target = env.target.model_dump(mode="json", exclude_defaults=True)
        data = {"env": {"name": env.name, **target}, **data}
    return mask_urls(data)  # type: ignore[no-any-return]


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=False)


def to_toml(data: dict[str, Any]) -> str:
    lines: list[str] = []
    _table(lines, [], data)
    return "\n".join(lines).strip() + "\n"


def _table(lines: list[str], path: list[str], data: dict[str, Any]) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        lines.append("")
        lines.append(f"[{'.'.join(_key(p) for p in path)}]")
    for k, v in scalars.items():
        if v is None:
            lines.append(f"# {_key(k)} is not set")
        else:
            lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in tables.items():
        _table(lines, [*path, k], v)


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):  # inside a list: [[proxy.static]] entries as inline tables
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()
                                if x is not None) + " }"
    raise TypeError(f"cannot show {type(v).__name__}")
