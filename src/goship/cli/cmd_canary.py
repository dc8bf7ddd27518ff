"""goship canary start|set-weight|status|promote|abort|explain"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from goship.cli.common import json_option, load_env
from goship.errors import EXIT_FAILED, UsageError
from goship.ui import ui

T = TypeVar("T")


def _on(ctx: click.Context, env: str, on_cluster: Callable[[Any], T],
        on_hosts: Callable[[Any, list[Any]], T], *, force: bool = False) -> T:
    """A canary command on ENV's cluster (`on_cluster(KubeTarget)`: goship.kube.canary,
    behind goship's edge) or on its hosts (`on_hosts(CanaryEngine, hosts)`, connected and
    closed here)."""
    from goship.canary.engine import CanaryEngine
    from goship.deploy.engine import close, connect

    project, environment = load_env(ctx, env)
    if environment.target.kubernetes is not None:
        from goship.kube.target import KubeTarget

        return on_cluster(KubeTarget(project, environment))
    hosts = connect(environment)
    try:
        return on_hosts(CanaryEngine(project, environment, force=force), hosts)
    finally:
        close(hosts)


def _kube() -> Any:
    from goship.kube import canary as kube_canary

    return kube_canary


def _weight(value: float) -> float:
    if not 0 <= value <= 100:
        raise UsageError(f"weight {value:g}: expected 0 to 100 (percent of clients)")
    return value


rule_options = [
    click.option("--header", "headers", multiple=True, metavar="NAME=VALUE",
                 help="Requests with this header value go to the canary (repeatable)."),
    click.option("--header-regex", "header_regex", multiple=True, metavar="NAME=PATTERN",
                 help="Requests whose header matches the regex go to the canary."),
    click.option("--cookie", "cookies", multiple=True, metavar="NAME=VALUE",
                 help="Requests with this cookie value go to the canary."),
    click.option("--allow", "allow", multiple=True, metavar="ID,...|CIDR,...",
                 help="User ids (from canary.id_cookie / id_header) or client CIDRs."),
]


def with_rules(f: Any) -> Any:
    for opt in reversed(rule_options):
        f = opt(f)
    return f


@click.group()
def canary() -> None:
    """Gray release: the new version beside the stable one, routed by header, cookie,
    allowlist and weight (nginx + Lua, no reload), with analysis, promote and abort.

    \b
    Example:
      goship canary start production --weight 5 --header X-App-Version=beta
      goship canary status production
      goship canary promote production
    """


@canary.command()
@click.argument("env")
@click.option("--weight", type=float, default=0.0, show_default=True,
              help="Percent of clients sent to the canary by a stable hash of their id.")
@with_rules
@click.option("--allow-dirty", is_flag=True)
@click.option("--skip-checks", is_flag=True)
@click.option("--force", is_flag=True, help="Break another deploy's lock.")
@click.pass_context
def start(ctx: click.Context, env: str, weight: float, headers: tuple[str, ...],
          header_regex: tuple[str, ...], cookies: tuple[str, ...], allow: tuple[str, ...],
          allow_dirty: bool, skip_checks: bool, force: bool) -> None:
    """Ship the current commit as the canary on every host (build, upload, start on the
    other color, health gate) and route to it by the given rules. It stays until changed,
    promoted or aborted.

    \b
    Example:
      goship canary start production --weight 10 --header-regex User-Agent=Mobile
    """
    from goship.canary.engine import parse_allow, parse_rules

    ids, cidrs = parse_allow(allow)
    rules_args = {"rules": parse_rules(headers, header_regex, cookies), "allow_ids": ids,
                  "allow_cidrs": cidrs}
    w = _weight(weight)

    def on_hosts(engine: Any, hosts: list[Any]) -> tuple[Any, str]:
        rules = engine.start(hosts, rules_args, w, allow_dirty=allow_dirty,
                             skip_checks=skip_checks)
        from goship.canary.engine import canary_color

        colors = sorted({canary_color(h, rules) for h in hosts})
        return rules, f"on {' and '.join(colors)} of {len(hosts)} host(s)"

    rules, where = _on(ctx, env, lambda k: (_kube().start(k, rules_args, w, {
        "allow_dirty": allow_dirty, "skip_checks": skip_checks, "force": force}),
        "beside stable on the cluster"), on_hosts, force=force)
    ui.out(f"canary {rules.release} {where}, weight {rules.weight:g}%, {len(rules.rules)} rule(s)")


@canary.command("set-weight")
@click.argument("env")
@click.argument("weight", type=float)
@click.pass_context
def set_weight(ctx: click.Context, env: str, weight: float) -> None:
    """Change the share of clients on the canary, on every host, without a reload.

    \b
    Example:
      goship canary set-weight production 25
    """
    w = _weight(weight)
    rules, where = _on(ctx, env, lambda k: (_kube().set_weight(k, w), "every edge"),
                       lambda engine, hosts: (engine.set_weight(hosts, w),
                                              f"{len(hosts)} host(s)"))
    ui.out(f"canary {rules.release}: weight {rules.weight:g}% on {where}")


@canary.command()
@click.argument("env")
@json_option
@click.pass_context
def status(ctx: click.Context, env: str, as_json: bool) -> None:
    """Rules, weight and live numbers per track since the canary started.

    \b
    Example:
      goship canary status production --json
    """
    data = _on(ctx, env, lambda k: _kube().status(k),
               lambda engine, hosts: engine.status(hosts))
    if as_json:
        ui.out(json.dumps(data, indent=2))
        return
    r = data["rules"]
    ui.out(f"canary {r['release']} (on {r['color']}) against stable {data['stable']}: weight "
           f"{r['weight']:g}%")
    for rule in r["rules"]:
        op = "=" if rule["mode"] == "exact" else "~"
        ui.out(f"  {rule['kind']} {rule['name']} {op} {rule['value']}")
    if r["allow_ids"] or r["allow_cidrs"]:
        ui.out(f"  allow {', '.join(r['allow_ids'] + r['allow_cidrs'])}")
    for track, n in (("canary", data["canary"]), ("stable", data["stable_numbers"])):
        ui.out(f"  {track}: {n['requests']} requests, {n['errors']} 5xx "
               f"({n['error_rate']:.2%}), p95 {n['p95_ms']} ms, p99 {n['p99_ms']} ms")


@canary.command()
@click.argument("env")
@click.pass_context
def promote(ctx: click.Context, env: str) -> None:
    """Make the canary the stable release on every host (zero failed requests); the old
    release stops after the drain.

    \b
    Example:
      goship canary promote production
    """
    def on_cluster(k: Any) -> str:
        return (f"promoted {_kube().promote(k, {})}: deployment/{k._cfg.app.name} runs it; "
                "the canary is deleted")

    def on_hosts(engine: Any, hosts: list[Any]) -> str:
        engine.promote(hosts)
        return f"promoted on {len(hosts)} host(s)"

    ui.out(_on(ctx, env, on_cluster, on_hosts))


@canary.command()
@click.argument("env")
@click.pass_context
def abort(ctx: click.Context, env: str) -> None:
    """Weight 0 on every host at once, then stop the canary.

    \b
    Example:
      goship canary abort production
    """
    seconds, where, gone = _on(
        ctx, env, lambda k: (_kube().abort(k), "every edge", "canary deleted"),
        lambda engine, hosts: (engine.abort(hosts, "aborted by hand"),
                               f"{len(hosts)} host(s)", "canary stopped"))
    ui.out(f"aborted: weight 0 on {where} in {seconds:.2f}s; {gone}")


@canary.command()
@click.argument("env")
@click.option("--header", "headers", multiple=True, metavar="NAME=VALUE")
@click.option("--cookie", "cookies", multiple=True, metavar="NAME=VALUE")
@click.option("--ip", default="127.0.0.1", show_default=True)
@json_option
@click.pass_context
def explain(ctx: click.Context, env: str, headers: tuple[str, ...], cookies: tuple[str, ...],
            ip: str, as_json: bool) -> None:
    """Which track a request like this gets, and which rule decided.

    \b
    Example:
      goship canary explain production --header X-App-Version=beta
      goship canary explain production --cookie goship_id=3f2a... --ip 10.1.2.3
    """
    from goship.canary.routing import Request, decide

    rules = _on(ctx, env, lambda k: _kube().rules(k),
                lambda engine, hosts: engine._rules(hosts[:1]))
    req = Request(headers=dict(h.split("=", 1) for h in headers if "=" in h),
                  cookies=dict(c.split("=", 1) for c in cookies if "=" in c), ip=ip)
    track, why = decide(rules, req)
    if as_json:
        ui.out(json.dumps({"track": track, "rule": why, "release": rules.release}))
    else:
        ui.out(f"{track}: {why}")


def run_canary_deploy(ctx: click.Context, env: str, steps: str | None,
                      min_requests: int | None, min_seconds: float | None, allow_dirty: bool,
                      skip_checks: bool, force: bool, as_json: bool, *,
                      wait: bool = False) -> None:
    """`goship deploy ENV --canary`: start at the first step, walk, promote or abort.
    `wait`: behind another release's lock, wait for it (then plan from the hosts again)."""
    from goship.canary.engine import CanaryEngine
    from goship.config.model import Canary
    from goship.deploy.engine import close, connect

    project, environment = load_env(ctx, env)
    th = environment.config.canary
    update: dict[str, Any] = {}
    if steps:
        try:
            update["steps"] = [float(x) for x in steps.split(",")]
        except ValueError:
            raise UsageError(f"--steps {steps!r}: expected weights like 5,25,50,100") from None
    if min_requests is not None:
        update["step_min_requests"] = min_requests
    if min_seconds is not None:
        update["step_min_seconds"] = min_seconds
    if update:
        from pydantic import ValidationError

        try:
            th = Canary.model_validate({**th.model_dump(), **update})
        except ValidationError as e:
            raise UsageError(f"canary options: {e.errors()[0]['msg']}") from None
        object.__setattr__(environment.config, "canary", th)
    if environment.target.kubernetes is not None:
        from goship.kube.target import KubeTarget

        report = _kube().run(KubeTarget(project, environment), th.steps, {
            "allow_dirty": allow_dirty, "skip_checks": skip_checks, "force": force,
            "wait": wait})
        _say(ctx, report, as_json, "edge")
        return
    hosts = connect(environment)
    try:
        engine = CanaryEngine(project, environment, force=force, wait=wait)
        engine.start(hosts, {"rules": (), "allow_ids": (), "allow_cidrs": ()}, th.steps[0],
                     allow_dirty=allow_dirty, skip_checks=skip_checks)
        report = engine.walk(hosts, th.steps)
    finally:
        close(hosts)
    _say(ctx, report, as_json, "host")


def _say(ctx: click.Context, report: Any, as_json: bool, where: str) -> None:
    if as_json:
        ui.out(json.dumps(report.__dict__, indent=2, default=str))
    elif report.action == "deploy":  # a cluster's first release: nothing to compare with
        ui.out(f"{report.release}: {report.reason}" if report.ok
               else f"deploy {report.release} FAILED: {report.reason}")
    elif report.ok:
        ui.out(f"canary {report.release}: {report.reason} in {report.seconds:.0f}s")
    else:
        ui.out(f"canary {report.release} ABORTED: {report.reason}")
        if report.numbers:
            ui.out(f"  numbers: {json.dumps(report.numbers)}")
        if report.abort_seconds is not None:
            ui.out(f"  weight 0 on every {where} {report.abort_seconds:.2f}s after the "
                   "decision")
    if not report.ok:
        ctx.exit(EXIT_FAILED)
