"""Commands whose capability is planned but not built yet. Each says so plainly and exits 3
(see docs/cli.md) instead of pretending to work."""

from __future__ import annotations

import click

from goship.cli.common import dry_run_option, json_option
from goship.errors import NotYetError


def _not_yet(what: str, issue: int) -> None:
    raise NotYetError(what, issue)


@click.command()
@click.argument("what")
def render(what: str) -> None:
    """Render configs: systemd, nginx, Dockerfile, Kubernetes... (Not built yet: #5.)

    \b
    Example:
      goship render all --out deploy/
    """
    _not_yet("goship render", 5)


@click.command()
@click.argument("env")
@dry_run_option
def setup(env: str, dry_run: bool) -> None:
    """Prepare an environment's hosts: user, directories, nginx, services. (Not built yet: #6.)

    \b
    Example:
      goship setup production --dry-run
    """
    _not_yet("goship setup", 6)


@click.command()
@click.argument("env")
@dry_run_option
@click.option("--canary", is_flag=True, help="Release as a canary with automatic analysis.")
def deploy(env: str, dry_run: bool, canary: bool) -> None:
    """Zero-downtime release to an environment. (Not built yet: #6.)

    \b
    Example:
      goship deploy production
    """
    _not_yet("goship deploy", 7 if canary else 6)


@click.command()
@click.argument("env")
@dry_run_option
@click.option("--to", "release", help="Release id to return to (default: the previous one).")
def rollback(env: str, dry_run: bool, release: str | None) -> None:
    """Return every host to the previous release. (Not built yet: #6.)

    \b
    Example:
      goship rollback production
    """
    _not_yet("goship rollback", 6)


@click.command()
@click.argument("env")
@json_option
def status(env: str, as_json: bool) -> None:
    """What runs where: release, health, traffic split. (Not built yet: #6.)

    \b
    Example:
      goship status production --json
    """
    _not_yet("goship status", 6)


@click.command()
@click.argument("env")
@click.option("--follow", "-f", is_flag=True)
def logs(env: str, follow: bool) -> None:
    """Application and nginx logs of every host, merged. (Not built yet: #6.)

    \b
    Example:
      goship logs production --follow
    """
    _not_yet("goship logs", 6)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def canary(args: tuple[str, ...]) -> None:
    """Gray release by header, cookie, allowlist and weight. (Not built yet: #7.)

    \b
    Example:
      goship canary start production --weight 5 --header X-App-Version=beta
    """
    _not_yet("goship canary", 7)
