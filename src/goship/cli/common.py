"""Pieces the commands share."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from goship.config import Environment, Project


def load_project(ctx: click.Context) -> Project:
    """goship.toml, loaded and validated once per command (a command that asks twice,
    as deploy does to choose its path, gets the same Project)."""
    from goship.config import find_config, load

    root = ctx.find_root()
    cached: Project | None = root.meta.get("goship.project")
    if cached is None:
        path: Path | None = root.obj
        cached = load(path if path is not None else find_config())
        root.meta["goship.project"] = cached
    return cached


def load_env(ctx: click.Context, name: str) -> tuple[Project, Environment]:
    project = load_project(ctx)
    return project, project.env(name)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")
dry_run_option = click.option("--dry-run", is_flag=True,
                              help="Print the plan for each host and change nothing.")
