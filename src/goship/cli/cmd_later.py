"""Commands whose capability is planned but not built yet. Each says so plainly and exits 3
(see docs/cli.md) instead of pretending to work."""

from __future__ import annotations

import click

from goship.errors import NotYetError


def _not_yet(what: str, issue: int) -> None:
    raise NotYetError(what, issue)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def canary(args: tuple[str, ...]) -> None:
    """Gray release by header, cookie, allowlist and weight. (Not built yet: #7.)

    \b
    Example:
      goship canary start production --weight 5 --header X-App-Version=beta
    """
    _not_yet("goship canary", 7)
