"""goship render KIND"""

from __future__ import annotations

import os
from pathlib import Path

import click

from goship.cli.common import load_project
from goship.errors import UsageError
from goship.ui import ui

SECRET_FILES = ("secret.yaml",)


@click.command()
@click.argument("what")
@click.option("--env", "env_name", help="Render with [env.ENV]'s overrides and hosts.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Write the files here (default: print them).")
@click.option("--show-secrets", is_flag=True,
              help="Put the env file's secret values in the output (Kubernetes Secret); "
              "written files that hold them are mode 0600.")
@click.pass_context
def render(ctx: click.Context, what: str, env_name: str | None, out: Path | None,
           show_secrets: bool) -> None:
    """Render configs from goship.toml, exactly as deploy installs them.

    WHAT: systemd, supervisord, nginx, lb, windows, dockerfile, kubernetes, consul,
    prometheus, grafana, logs, ci, or all. Templates can be overridden from
    goship/templates/ in the project (docs/render.md).

    \b
    Example:
      goship render systemd
      goship render lb --env production
      goship render all --env production --out deploy/
    """
    from goship.render.inputs import RenderInput, host_addresses, project_version
    from goship.render.kinds import KINDS, NEEDS_HOSTS, render_kind
    from goship.secrets import resolve
    from goship.secrets import secret_names as names

    project = load_project(ctx)
    env = project.env(env_name) if env_name else None
    config = env.config if env else project.base
    # The secrets' names only (a sops file not decrypted, no [secrets] command run), unless
    # --show-secrets asks for their values.
    secret_names = names(project.root, config)
    secrets = dict.fromkeys(secret_names, "")
    if show_secrets and secret_names:
        secrets = {k: v for k, v in resolve(project.root, config).items()
                   if k in secret_names}
    r = RenderInput(config=config, root=project.root, env=env_name,
                    hosts=host_addresses(env) if env else [],
                    version=project_version(project.root, config), secrets=secrets,
                    show_secrets=show_secrets)
    skipped = [k for k in NEEDS_HOSTS if not r.hosts] if what == "all" else []
    kinds = [k for k in KINDS if k not in skipped] if what == "all" else [what]
    files: dict[str, str] = {}
    for kind in kinds:
        for name, text in render_kind(kind, r).items():
            files[f"{kind}/{name}" if what == "all" else name] = text
    if what == "all":
        index = ["# goship render all", "", f"Version: {r.version}; environment: "
                 f"{env_name or '(base config)'}", ""]
        index += [f"- {name}" for name in sorted(files)]
        if skipped:
            index += ["", f"Not rendered without --env: {', '.join(skipped)}"]
        files["INDEX.md"] = "\n".join(index) + "\n"
    if out is None:
        for name, text in files.items():
            ui.out(f"# ---- {name}")
            ui.out(text.rstrip())
        return
    for name, text in files.items():
        path = out / name
        try:
            write_file(path, text, secret=show_secrets and name.endswith(SECRET_FILES))
        except OSError as e:
            raise UsageError(f"cannot write {e.filename or path}: {e.strerror or e}",
                             hint="pass --out a directory you can write to") from None
        ui.out(f"wrote {path}")
    if skipped:
        ui.warn(f"not rendered without --env (they need the hosts): {', '.join(skipped)}")


def write_file(path: Path, text: str, secret: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    if secret:
        os.chmod(path, 0o600)  # an existing file keeps its old mode otherwise
    elif path.name.endswith((".sh", ".ps1")):
        os.chmod(path, 0o755)  # noqa: S103 (scripts, meant to be run)
