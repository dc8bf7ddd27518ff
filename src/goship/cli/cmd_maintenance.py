"""goship maintenance on|off ENV"""

from __future__ import annotations

import json

import click

from goship.cli.common import json_option, load_env
from goship.errors import EXIT_FAILED
from goship.ui import ui


@click.command()
@click.argument("state", type=click.Choice(["on", "off"]))
@click.argument("env")
@click.option("--message", help="Text of the 503 page (escaped; default: a short notice).")
@click.option("--hold", type=float,
              help="Hold each request up to SECONDS for `off` (then 503) instead of "
                   "answering 503 at once.")
@click.option("--retry-after", type=int, help="Retry-After header, seconds (default 60).")
@json_option
@click.pass_context
def maintenance(ctx: click.Context, state: str, env: str, message: str | None,
                hold: float | None, retry_after: int | None, as_json: bool) -> None:
    """Put ENV in maintenance (nginx answers 503 with a page) or take it out, on every
    host, without a reload. The health path still reaches the app; `off` lets held
    requests through at once. The flag survives nginx reloads and restarts.

    \b
    Example:
      goship maintenance on production --message "Back at 10:00 UTC"
      goship maintenance on production --hold 30
      goship maintenance off production
    """
    from goship.deploy import maintenance as mm

    want = mm.mode(state == "on", message, hold, retry_after)  # exit 2 before any host
    _, environment = load_env(ctx, env)
    results = mm.switch(environment, want)
    failed = [n for n, r in results.items() if "error" in r]
    if as_json:
        ui.out(json.dumps({"env": env, "maintenance": state, "hosts": results}, indent=2))
    else:
        for name, r in results.items():
            ui.out(f"{name}: FAILED: {r['error']}" if "error" in r
                   else f"{name}: {want.describe()}")
        done = len(results) - len(failed)
        ui.out(f"maintenance {state} {env}: {done} of {len(results)} host(s)"
               + (f"; failed: {', '.join(failed)}" if failed else ""))
    if failed:
        ctx.exit(EXIT_FAILED)
