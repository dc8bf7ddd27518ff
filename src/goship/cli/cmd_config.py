"""goship config show|check"""

from __future__ import annotations

import click

from goship.cli.common import json_option, load_project
from goship.ui import ui


@click.group()
def config() -> None:
    """Show or check goship.toml.

    \b
    Example:
      goship config show production --json
    """


@config.command()
@click.argument("env", required=False)
@json_option
@click.pass_context
def show(ctx: click.Context, env: str | None, as_json: bool) -> None:
    """Print the effective config, with [env.ENV] merged in when given. Secrets are masked.

    \b
    Example:
      goship config show lab
    """
    from goship.config.show import effective, to_json, to_toml

    project = load_project(ctx)
    environment = project.env(env) if env else None
    data = effective(project, environment)
    ui.out(to_json(data) if as_json else to_toml(data).rstrip())


@config.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate goship.toml and every environment in it; exit 2 on the first problem.

    \b
    Example:
      goship config check && echo valid
    """
    project = load_project(ctx)
    envs = ", ".join(sorted(project.envs)) or "none"
    ui.info(f"{project.file}: valid (environments: {envs})")
