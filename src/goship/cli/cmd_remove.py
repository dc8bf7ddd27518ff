"""goship remove"""

from __future__ import annotations

import click

from goship.cli.common import dry_run_option, load_env


@click.command()
@click.argument("env")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--purge-data", is_flag=True,
              help="Also remove the service user's data (shared/data) and the user.")
@click.option("--force", is_flag=True, help="Break another goship's deploy lock.")
@dry_run_option
@click.pass_context
def remove(ctx: click.Context, env: str, yes: bool, purge_data: bool, force: bool,
           dry_run: bool) -> None:
    """Remove the app from every host of ENV: its units or supervisord programs, nginx
    site, standby timers, releases, environments, state, journal and lock. Other apps on
    the hosts are left alone, and so is the service user's data (shared/data) and the
    user, unless --purge-data.

    It prints what goes on each host first, then asks you to type the app's name (without
    a terminal it needs --yes). Refused while a deploy holds the lock (exit 4).

    \b
    Example:
      goship remove staging --dry-run
      goship remove staging --yes
    """
    from goship.deploy.remove import remove as run_remove

    project, environment = load_env(ctx, env)
    code = run_remove(project, environment, yes=yes, dry_run=dry_run, purge_data=purge_data,
                      force=force)
    if code:
        ctx.exit(code)
