"""goship doctor [ENV]"""

from __future__ import annotations

import json

import click

from goship.cli.common import json_option
from goship.errors import EXIT_FAILED
from goship.ui import ui


@click.command()
@click.argument("env", required=False)
@json_option
@click.pass_context
def doctor(ctx: click.Context, env: str | None, as_json: bool) -> None:
    """Check the local toolchain and, for ENV, every host: reachable over SSH, OS/arch,
    systemd or not, nginx, free disk, the service user, root or sudo; and [docker]
    registry: it answers, and takes the login when it asks for one.

    One line per check; each problem says how to fix it. Exit 1 when anything fails.

    \b
    Example:
      goship doctor            # this machine only
      goship doctor lab        # and every host of [env.lab]
    """
    from goship.doctor import project_or_none, run_doctor

    path = ctx.find_root().obj
    if env is not None:
        from goship.cli.common import load_env

        project, environment = load_env(ctx, env)
        checks = run_doctor(project, environment)
    else:
        checks = run_doctor(project_or_none(path), None)
    failed = [c for c in checks if c.level == "fail"]
    if as_json:
        ui.out(json.dumps({"ok": not failed, "checks": [c.as_dict() for c in checks]}, indent=2))
    else:
        for c in checks:
            if c.level != "ok" or ui.verbosity >= 0:
                ui.out(c.line())
        ui.info(f"{len(failed)} problem(s)" if failed else "all good")
    if failed:
        ctx.exit(EXIT_FAILED)
