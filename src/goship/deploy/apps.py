"""Several goship apps on one host: what an app's nginx site claims (listen ports, server
names, path prefix) and the decision, from the host's facts, that two apps' claims collide.
Pure: tested as data (tests/unit/test_apps.py)."""

from __future__ import annotations

from goship.config import Config
from goship.errors import UsageError
from goship.facts import AppClaim


class AppConflict(UsageError):
    """Two apps would claim the same nginx server or path: nothing was changed."""


def claim_of(config: Config) -> AppClaim:
    """This app's claim, as its site's claim line will say."""
    p = config.proxy
    listen = [p.listen] + ([p.tls.listen] if p.tls.mode != "off" else [])
    return AppClaim(app=config.app.name, listen=listen, server_names=list(p.server_names),
                    path=p.path)


def _names(c: AppClaim) -> str:
    return ("server_names " + " ".join(c.server_names) if c.server_names
            else "the default server")


def conflict(mine: AppClaim, theirs: AppClaim) -> str | None:
    """Why `mine` cannot share the host with `theirs`, or None. Apps on different ports, or
    with disjoint server names, never collide; path apps share a server (same listen, same
    names) as long as their prefixes differ; a whole-site app owns its server."""
    if mine.app == theirs.app:
        return None
    shared = sorted(set(mine.listen) & set(theirs.listen))
    if not shared:
        return None
    port = shared[0]
    a, b = set(mine.server_names), set(theirs.server_names)
    if a != b and (a & b):
        both = sorted(a & b)[0]
        return (f"app {theirs.app} already serves {both} on port {port} under other "
                f"server_names ({' '.join(theirs.server_names)}): list exactly the same "
                f"proxy.server_names as {theirs.app}, or none of them")
    if a != b:
        return None  # different servers (names, or names beside the default server)
    where = f"{_names(theirs)} on port {port}"
    if mine.path is None or theirs.path is None:
        whole = theirs if theirs.path is None else mine
        who = f"app {theirs.app}" if whole is theirs else "this app"
        return (f"app {theirs.app} already claims {where} ({who} serves the whole site): "
                f"give one of them other proxy.server_names, or both a proxy.path")
    if mine.path == theirs.path:
        return (f"app {theirs.app} already claims path {theirs.path} of {where}: "
                f"choose another proxy.path or other proxy.server_names")
    return None


def refuse_conflicts(config: Config, host: str, claims: list[AppClaim]) -> None:
    """Raise (exit 2, before any change) when this app's site would collide with another
    goship app's on the host."""
    mine = claim_of(config)
    for theirs in claims:
        why = conflict(mine, theirs)
        if why:
            raise AppConflict(f"{host}: {why}")
