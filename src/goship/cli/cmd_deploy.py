"""goship setup | deploy | rollback | status | logs"""

from __future__ import annotations

import json
from typing import Any

import click

from goship.cli.common import dry_run_option, json_option, load_env
from goship.config.load import Environment, Project
from goship.errors import EXIT_FAILED, NotYetError
from goship.ui import ui


def _report(ctx: click.Context, outcome: Any, as_json: bool) -> None:
    from goship.deploy.engine import Outcome

    if not isinstance(outcome, Outcome):  # a dry run: the plan deploy would execute
        if as_json:
            ui.out(json.dumps({"plan": outcome.as_dict()}, indent=2))
        else:
            for line in outcome.lines():
                ui.out(line)
            ui.info("dry run: nothing was changed")
        return
    if as_json:
        ui.out(json.dumps(outcome.__dict__, indent=2, default=str))
    elif outcome.ok:
        for name, h in outcome.hosts.items():
            notes = f" ({'; '.join(h['notes'])})" if h["notes"] else ""
            what = "still" if h["restored"] else "live"
            ui.out(f"{name}: {h['release']} {what} on {h['color']} at {h['url']}{notes}")
        done = len(outcome.hosts) - len(outcome.restored)
        ui.out(f"{outcome.action} {outcome.env}: {outcome.release} on {done} "
               f"host(s) in {outcome.seconds:.1f}s")
        if outcome.restored:
            ui.warn(f"{len(outcome.restored)} host(s) failed within deploy.max_failures and "
                    f"serve their old release: {', '.join(outcome.restored)}")
    else:
        ui.out(f"{outcome.action} {outcome.env} FAILED: {outcome.failure}")
        if outcome.restored:
            ui.out(f"restored: {', '.join(outcome.restored)} (serving what they served before)")
    if not outcome.ok:
        ctx.exit(EXIT_FAILED)


@click.command()
@click.argument("env")
@dry_run_option
@click.option("--canary", is_flag=True,
              help="Release as a canary: walk the steps with analysis, promote or abort.")
@click.option("--steps", help="Canary weights, e.g. 5,25,50,100 (default: canary.steps).")
@click.option("--step-min-requests", type=int, help="Canary requests a step needs.")
@click.option("--step-min-seconds", type=float, help="Seconds a step lasts at least.")
@click.option("--allow-dirty", is_flag=True, help="Deploy uncommitted changes (-dirty).")
@click.option("--skip-checks", is_flag=True, help="Skip go mod tidy/verify before building.")
@click.option("--force", is_flag=True, help="Break another deploy's lock.")
@click.option("--wait", is_flag=True, help="Wait for another deploy's lock instead of failing.")
@json_option
@click.pass_context
def deploy(ctx: click.Context, env: str, dry_run: bool, canary: bool, steps: str | None,
           step_min_requests: int | None, step_min_seconds: float | None, allow_dirty: bool,
           skip_checks: bool, force: bool, wait: bool, as_json: bool) -> None:
    """Zero-downtime release of the current commit to ENV.

    Builds and packages for each host's architecture, uploads (skipped when the release is
    already there), verifies every sha256, starts the new release on the other color's
    ports, gates on health, switches nginx (tested first), drains and stops the old color.
    Any failure restores every host already switched.

    \b
    Example:
      goship deploy production
      goship deploy lab --dry-run
    """
    from goship.targets import deploy_target

    if canary or (not dry_run and _cluster_canary(ctx, env)):
        from goship.cli.cmd_canary import run_canary_deploy

        if dry_run:
            raise NotYetError("goship deploy --dry-run --canary", 7)  # unbuilt: exit 3
        run_canary_deploy(ctx, env, steps, step_min_requests, step_min_seconds, allow_dirty,
                          skip_checks, force, as_json, wait=wait)
        return
    from goship.deploy import lb

    project, environment = load_env(ctx, env)
    lb.check(project, environment)
    target = deploy_target(project, environment)
    _report(ctx, target.deploy(allow_dirty=allow_dirty, skip_checks=skip_checks, force=force,
                               wait=wait, dry_run=dry_run), as_json)
    _balancers(project, environment, dry_run)


def _cluster_canary(ctx: click.Context, env: str) -> bool:
    """deploy.strategy = "canary" on a Kubernetes environment: every deploy is a canary
    (hosts take it from `--canary`)."""
    from goship.render.kubernetes import strategy

    _, environment = load_env(ctx, env)
    return environment.target.kubernetes is not None and strategy(
        environment.config) == "canary"


def _balancers(project: Project, environment: Environment, dry_run: bool) -> None:
    """proxy.lb.hosts: the balancer installed (or made current) after the app hosts."""
    from goship.deploy import lb

    if environment.config.proxy.lb.hosts:
        from goship.deploy.engine import env_values

        # the same values the release used: env_values resolves once per command
        for line in lb.install(project, environment, env_values(project, environment),
                               dry_run=dry_run):
            ui.info(line)


@click.command()
@click.argument("env")
@dry_run_option
@click.option("--to", "release", help="Release id to return to (default: the previous one).")
@click.option("--force", is_flag=True, help="Break another deploy's lock.")
@click.option("--wait", is_flag=True, help="Wait for another deploy's lock.")
@json_option
@click.pass_context
def rollback(ctx: click.Context, env: str, dry_run: bool, release: str | None, force: bool,
             wait: bool, as_json: bool) -> None:
    """Return every host to the previous (or named) release, health-gated, zero downtime.

    \b
    Example:
      goship rollback production
      goship rollback production --to v1.4.2-3fa9c01b2e
    """
    from goship.targets import deploy_target

    project, environment = load_env(ctx, env)
    _report(ctx, deploy_target(project, environment).rollback(
        to=release, force=force, wait=wait, dry_run=dry_run), as_json)


@click.command()
@click.argument("env")
@dry_run_option
@click.pass_context
def setup(ctx: click.Context, env: str, dry_run: bool) -> None:
    """Prepare ENV's hosts: service user, directories, service manager files, nginx.
    The first deploy does this too; a second run changes nothing and says so.

    \b
    Example:
      goship setup production --dry-run
    """
    from goship.deploy.engine import env_values, fleet

    project, environment = load_env(ctx, env)
    if environment.target.kubernetes is not None:
        from goship.errors import UsageError

        raise UsageError(f"env.{env} is a Kubernetes cluster: it has no hosts to set up",
                         hint=f"`goship deploy {env}` applies everything the cluster needs")
    # The env file is read (and a broken one refused) before any host is touched, as by
    # deploy; deploy writes it, with the release.
    values = env_values(project, environment)
    from goship.deploy import lb

    lb.check(project, environment, values)
    with fleet(environment) as hosts:
        for h in hosts:
            if dry_run:
                ui.out(f"{h.name}: would ensure user {h.config.service_user}, "
                       f"{h.paths.root}/, {h.services.name} files, nginx")
                continue
            changes = h.ensure_layout()
            target = "green" if h.live_color == "blue" else "blue"
            if h.services.install(target, h.live_color or target, project.root):
                changes.append(f"{h.services.name} files")
            h.nginx.prepare(project.root)
            h.nginx.prepare_tls()
            ui.out(f"{h.name}: " + (", ".join(changes) if changes else "nothing to change"))
    for line in lb.install(project, environment, values, dry_run=dry_run):
        ui.out(line)


@click.command()
@click.argument("env")
@json_option
@click.pass_context
def status(ctx: click.Context, env: str, as_json: bool) -> None:
    """Per host: the live release and color, each instance's health, nginx, the last
    deploy from the journal, and drift (a host not on the release most hosts run).

    \b
    Example:
      goship status production --json
    """
    from goship.targets import deploy_target

    project, environment = load_env(ctx, env)
    data = deploy_target(project, environment).status()
    if as_json:
        ui.out(json.dumps(data, indent=2, default=str))
        return
    if data.get("target") == "kubernetes":
        pods = ", ".join(f"{n}: {c}" for n, c in data["nodes"].items()) or "no pods"
        ui.out(f"deployment/{data['deployment']} in {data['namespace']}: "
               f"{data['release'] or 'nothing deployed'} (revision {data['revision'] or '-'}), "
               f"{data['ready']}/{data['desired']} ready; pods per node: {pods}; "
               f"url {data['url'] or '-'}")
        from goship.kube.plan import hpa_line

        if data.get("color"):
            ui.out(f"blue-green: the Service selects {data['color']}")
        if data.get("standby"):
            ui.out(data["standby"])
        c = data.get("canary")
        if c:
            ui.out(f"canary {c['release']}: {c['ready']}/{c['desired']} ready, weight "
                   + (f"{c['weight']:g}%" if c["weight"] is not None else "- (starting)")
                   + (f", {c['rules']} rule(s)" if c["rules"] else "")
                   + " (goship canary status for its numbers)")
        ui.out(hpa_line(data.get("hpa")))
        last = data.get("last")
        if last:
            ui.out(f"last {last['action']} {last['outcome']} {last['time']} by {last['who']}: "
                   f"{last.get('from') or '-'} -> {last['release']}"
                   + (f" ({last['error']})" if last.get("error") else ""))
        return
    for name, h in data["hosts"].items():
        if "error" in h:
            ui.out(f"{name}: unreachable: {h['error']}")
            continue
        inst = ", ".join(f"{p} {i['health']}" + (
            f" container {i['container']} {i['state']}, {i['restarts']} restart(s)"
            if "container" in i else "") + (f" consul {i['consul']}" if "consul" in i else "")
            for p, i in h["instances"].items()) or "none"
        last = h["last"] or {}
        drift = "  DRIFT" if h["drift"] else ""
        ui.out(f"{name}: {h['release'] or 'nothing deployed'} on {h['color'] or '-'} "
               f"[{inst}] nginx {h['nginx']}, previous {h['previous'] or '-'}; last "
               f"{last.get('action', '-')} {last.get('outcome', '')} "
               f"{last.get('time', '')}{drift}")
        if h.get("canary_redis"):
            ui.out(f"{name}: {h['canary_redis']['line']}")
        if h.get("stray"):
            ui.out(f"{name}: DRIFT: instances of this app on ports no color uses: "
                   f"{', '.join(str(p) for p in h['stray'])} (the next deploy stops them)")
        m = h.get("maintenance") or {}
        if m.get("on"):
            held = f"requests held up to {m['hold']}s, then " if m["hold"] else ""
            ui.out(f"{name}: MAINTENANCE on: {held}503 with the page, Retry-After "
                   f"{m['retry_after']}s (`goship maintenance off`)")
        sb = h.get("standby")
        if sb and sb.get("running"):
            ui.out(f"{name}: standby {sb['release']} on {sb['color']}, warm for "
                   f"{sb['seconds_left']}s more (instant `goship rollback`)")
        for proc in h.get("processes") or []:
            more = f", next {proc['next']}" if proc.get("next") else ""
            ui.out(f"{name}: process {proc['unit']}: {proc['state']}"
                   f"{', pid ' + str(proc['pid']) if proc.get('pid') else ''}"
                   f"{', ' + str(proc['restarts']) + ' restart(s)' if proc['restarts'] else ''}"
                   f"{more}")
        dr = h.get("draining")
        if dr and dr.get("started"):
            ui.out(f"{name}: draining {dr['release']} on {dr['color']}: "
                   f"{dr['connections'] if dr['connections'] is not None else '?'} open "
                   f"connection(s) (websockets, SSE); stops when they close, in "
                   f"{dr['seconds_left']}s at the latest")


@click.command()
@click.argument("env")
@click.option("--host", help="Only this host.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines.")
@click.option("--since", help="Only lines since (journalctl syntax, e.g. '10 min ago').")
@click.option("-n", "lines", type=int, default=50, show_default=True,
              help="Lines per log to start with.")
@click.pass_context
def logs(ctx: click.Context, env: str, host: str | None, follow: bool, since: str | None,
         lines: int) -> None:
    """Application and nginx access logs of every host, each line prefixed with its host.

    \b
    Example:
      goship logs production --follow
    """
    from goship.targets import deploy_target

    project, environment = load_env(ctx, env)
    deploy_target(project, environment).logs(host=host, follow=follow, since=since,
                                             lines=lines)
