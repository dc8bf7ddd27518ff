"""`goship init`: write a commented goship.toml from what goproject read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from goship.goproject import Inspection, default_app_name

STAMP_VALUES = {
    "version": "{version}", "buildversion": "{version}",
    "commit": "{commit}", "gitcommit": "{commit}",
    "buildtime": "{build_time}", "builddate": "{build_time}", "date": "{build_time}",
    "builtat": "{build_time}",
}


@dataclass
class InitResult:
    text: str
    warnings: list[str]


def toml_value(value: Any) -> str:
    # JSON strings and arrays of strings are valid TOML basic strings and arrays.
    return json.dumps(value, ensure_ascii=False)


def render(ins: Inspection, name: str | None = None) -> InitResult:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("goship", "templates"), undefined=StrictUndefined,
                      keep_trailing_newline=True, autoescape=False)  # noqa: S701 (TOML, not HTML)
    env.filters["toml"] = toml_value
    app = name or default_app_name(ins.gomod.module)
    main = ins.main
    stamps = [{"flag": s.flag, "value": STAMP_VALUES[s.name.lower()]}
              for s in ins.stamps if s.name.lower() in STAMP_VALUES]
    warnings = []
    if not ins.health:
        warnings.append("no health route found; using /health (add one to the service)")
    if not ins.port:
        detail = f" (port {ins.hardcoded_port} is hard-coded)" if ins.hardcoded_port else ""
        warnings.append(f"no port environment variable found{detail}; goship will set PORT, "
                        "make the service read it")
    if not ins.graceful:
        warnings.append("no graceful shutdown on SIGTERM found (http.Server.Shutdown); "
                        "in-flight requests may be cut when an old release stops")
    if not stamps:
        warnings.append("no version variable to stamp found (e.g. var version = \"dev\")")
    port_default = ins.port.default if ins.port else None
    text = env.get_template("goship.toml.j2").render(
        name=app, module_dir=".", main=main, mains=ins.mains, stamps=stamps,
        assets=ins.assets, embedded=ins.embedded, gin=ins.gin,
        port_env=ins.port.name if ins.port else "PORT", port_found=ins.port is not None,
        port_default=port_default, hardcoded_port=ins.hardcoded_port,
        base_port=port_default if port_default and 1024 <= port_default <= 64000 else 8080,
        graceful=ins.graceful, health=ins.health or "/health",
        health_found=ins.health is not None,
    )
    return InitResult(text, warnings)


def write(path: Path, text: str, *, force: bool) -> None:
    from goship.errors import UsageError

    if path.exists() and not force:
        raise UsageError(f"{path} exists", hint="pass --force to overwrite it")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
