"""goship apps ENV"""

from __future__ import annotations

import json
from typing import Any

import click

from goship.cli.common import json_option, load_env
from goship.errors import EXIT_FAILED
from goship.ui import ui


def rows(claims: dict[str, list[Any] | str]) -> list[dict[str, Any]]:
    """Host -> its apps' claims (or an error line) -> one row per app (pure: tested)."""
    out: list[dict[str, Any]] = []
    for host, got in claims.items():
        if isinstance(got, str):
            out.append({"host": host, "error": got})
            continue
        for c in got:
            out.append({"host": host, "app": c.app, "release": c.release, "live": c.color,
                        "ports": c.ports, "listen": c.listen, "server_names": c.server_names,
                        "path": c.path})
    return out


def table(rows_: list[dict[str, Any]]) -> list[str]:
    head = ("HOST", "APP", "RELEASE", "LIVE", "PORTS", "SERVED AT")
    body: list[tuple[str, ...]] = []
    for r in rows_:
        if "error" in r:
            body.append((r["host"], "?", "", "", "", f"FAILED: {r['error']}"))
            continue
        ports = " ".join(f"{c}={','.join(str(p) for p in ps)}"
                         for c, ps in sorted(r["ports"].items()) if ps)
        names = " ".join(r["server_names"]) if r["server_names"] else "default server"
        where = f"{names}{r['path'] or ''} :{','.join(str(p) for p in r['listen'])}"
        body.append((r["host"], r["app"], r["release"] or "?", r["live"] or "?",
                     ports or "?", where))
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head) - 1)]
    return ["  ".join([*(x[i].ljust(widths[i]) for i in range(len(widths))), x[-1]]).rstrip()
            for x in [head, *body]]


@click.command()
@click.argument("env")
@json_option
@click.pass_context
def apps(ctx: click.Context, env: str, as_json: bool) -> None:
    """List every goship app on ENV's hosts, from their nginx sites: its release, live
    color, ports, and where nginx serves it (server names or path, listen port).

    \b
    Example:
      goship apps production
      goship apps production --json
    """
    from goship.deploy.engine import parallel
    from goship.errors import GoshipError
    from goship.facts import gather
    from goship.targets import transports

    _, environment = load_env(ctx, env)
    config = environment.config
    ts = transports(environment)
    got: dict[str, list[Any] | str] = {}

    def one(t: Any) -> None:
        try:
            got[t.name] = gather(t, config.deploy.base_path, config.service_user).apps
        except GoshipError as e:
            got[t.name] = e.line()
        finally:
            t.close(wait=False)

    for t, err in parallel(ts, one, config.deploy.concurrency):
        if err is not None:
            got[t.name] = f"{type(err).__name__}: {err}"
    result = rows({t.name: got[t.name] for t in ts})
    if as_json:
        ui.out(json.dumps({"env": env, "apps": result}, indent=2))
    else:
        for line in table(result):
            ui.out(line)
    if any("error" in r for r in result):
        ctx.exit(EXIT_FAILED)
