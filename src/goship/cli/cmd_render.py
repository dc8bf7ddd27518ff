"""goship render KIND"""

from __future__ import annotations

from pathlib import Path

import click

from goship.cli.common import load_project
from goship.ui import ui


@click.command()
@click.argument("what")
@click.option("--env", "env_name", help="Render with [env.ENV]'s overrides.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Write the files here (default: print them).")
@click.pass_context
def render(ctx: click.Context, what: str, env_name: str | None, out: Path | None) -> None:
    """Render configs from goship.toml, exactly as deploy installs them.

    WHAT: systemd, supervisord, nginx, or all. (windows, dockerfile, kubernetes, consul,
    prometheus, grafana, logs and ci are not built yet: issue #5.) Templates can be
    overridden from goship/templates/ in the project.

    \b
    Example:
      goship render systemd
      goship render all --env production --out deploy/
    """
    from goship.render.kinds import BUILT, PLANNED, render_kind

    project = load_project(ctx)
    config = project.env(env_name).config if env_name else project.base
    kinds = list(BUILT) if what == "all" else [what]
    files: dict[str, str] = {}
    for kind in kinds:
        for name, text in render_kind(kind, config, project.root).items():
            files[f"{kind}/{name}" if what == "all" else name] = text
    if what == "all":
        index = ["# goship render all", ""]
        index += [f"- {name}" for name in sorted(files)]
        index += ["", f"Not yet (issue #5): {', '.join(PLANNED)}", ""]
        files["INDEX.md"] = "\n".join(index)
    if out is None:
        for name, text in files.items():
            ui.out(f"# ---- {name}")
            ui.out(text.rstrip())
    else:
        for name, text in files.items():
            path = out / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            ui.out(f"wrote {path}")
    if what == "all":
        ui.warn(f"not rendered yet (issue #5): {', '.join(PLANNED)}")
