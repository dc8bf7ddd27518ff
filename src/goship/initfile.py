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
    "builtat": "{build_time}", "built": "{build_time}",
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
    stamps = [{"flag": s.flag, "value": STAMP_VALUES[s.name.lower()]}
              for s in ins.stamps if s.name.lower() in STAMP_VALUES]
    stamps += [{"flag": f, "value": v} for f, v in ins.literal_stamps.items()
               if not any(s["flag"] == f for s in stamps)]
    warnings = list(ins.warnings)
    if not ins.health:
        warnings.append("no health route found; using /health (add one to the service)")
    if not ins.graceful and not any("SIGTERM" in w for w in warnings):
        warnings.append("no graceful shutdown on SIGTERM found (http.Server.Shutdown); "
                        "in-flight requests may be cut when an old release stops")
    if not stamps:
        warnings.append("no version variable to stamp found (e.g. var version = \"dev\")")
    for note in ins.notes:
        if "{port}" in note:
            warnings.append(note)
    port_default = ins.port.default if ins.port else None
    base = ins.base_port
    prefix = "" if ins.module_dir == "." else ins.module_dir + "/"
    text = env.get_template("goship.toml.j2").render(
        name=app, module_dir=ins.module_dir, main=ins.main, mains=ins.mains, stamps=stamps,
        assets=[prefix + a for a in ins.assets], embedded=ins.embedded, gin=ins.gin,
        port_env=ins.port.name if ins.port else "PORT", port_found=ins.port is not None,
        port_kind=ins.port_kind, port_default=port_default, hardcoded_port=ins.hardcoded_port,
        base_port=base if base and 1024 <= base <= 64000 else 8080,
        graceful=ins.graceful, health=ins.health or "/health",
        health_found=ins.health is not None, args=ins.args,
        files=[prefix + f for f in ins.files], config_files=ins.config_files,
        data_dirs=ins.data_dirs, cgo=ins.cgo, tags=ins.tags, before=ins.before,
        notes=ins.notes, facts=ins.facts, processes=proposed_processes(ins.mains, ins.main, app),
    )
    return InitResult(text, warnings)


def proposed_processes(mains: list[str], main: str, app: str) -> list[dict[str, str]]:
    """Every other main package as a [processes.NAME] proposal (NAME from its directory);
    written commented: nothing in the code tells a worker from a job or a CLI tool."""
    import re

    from goship.config.schedule import PROCESS_NAME

    out, seen = [], {app}
    for m in mains:
        if m in (main, "."):
            continue
        name = re.sub(r"[^a-z0-9-]+", "-", m.rstrip("/").rsplit("/", 1)[-1].lower()).strip("-")
        if PROCESS_NAME.match(name) and name not in seen:
            seen.add(name)
            out.append({"name": name, "main": m})
    return out


def facts_table(ins: Inspection) -> list[str]:
    """fact | value | certainty | where, aligned for a terminal."""
    rows = [("fact", "value", "certainty", "where")] + [
        (f.name, f.value, f.certainty, f.where) for f in ins.facts]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip()
            for r in rows]


def write(path: Path, text: str, *, force: bool) -> None:
    from goship.errors import UsageError

    if path.exists() and not force:
        raise UsageError(f"{path} exists", hint="pass --force to overwrite it")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
