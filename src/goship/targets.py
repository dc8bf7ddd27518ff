"""Where an environment deploys: one registry of target kinds. Each kind says how an
environment selects it, its hosts' transports and addresses, and the deploy target that
plans, applies, reports and rolls back a release there.

A kind added here (Kubernetes: `kubernetes = ...` in an environment, goship.kube) is
picked up by the config's "exactly one of" rule, `goship render --env`, doctor and the
CLI's deploy, rollback, status and logs."""

from __future__ import annotations

import abc
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from goship.config.validators import split_host
from goship.transport import LocalTransport, SshOptions, SshTransport, Transport

if TYPE_CHECKING:
    from goship.config import Environment, Project
    from goship.config.model import Target_
    from goship.deploy.engine import Outcome


class Plan(Protocol):
    """What a dry run returns (the host fleet's FleetPlan, a cluster's KubePlan): the plan
    deploy would execute, printed line by line or as JSON."""

    def lines(self) -> list[str]: ...

    def as_dict(self) -> dict[str, Any]: ...


class DeployTarget(abc.ABC):
    """What every target implements: plan (deploy --dry-run), apply (deploy), rollback,
    status and logs. The host fleet (SSH, lab, this machine) is the first."""

    def __init__(self, project: Project, env: Environment) -> None:
        self.project, self.env = project, env

    @abc.abstractmethod
    def deploy(self, **opts: Any) -> Outcome | Plan: ...

    @abc.abstractmethod
    def rollback(self, *, to: str | None, **opts: Any) -> Outcome | Plan: ...

    @abc.abstractmethod
    def status(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def logs(self, *, host: str | None, follow: bool, since: str | None, lines: int) -> None:
        ...


class HostFleet(DeployTarget):
    """Hosts reached over a transport, each running the app under systemd or supervisord
    behind nginx: the release engine of goship.deploy."""

    def deploy(self, **opts: Any) -> Outcome | Plan:
        from goship.deploy.engine import deploy

        return deploy(self.project, self.env, **opts)

    def rollback(self, *, to: str | None, **opts: Any) -> Outcome | Plan:
        from goship.deploy.engine import rollback

        return rollback(self.project, self.env, to=to, **opts)

    def status(self) -> dict[str, Any]:
        from goship.deploy.status import status

        return status(self.env, self.project)

    def logs(self, *, host: str | None, follow: bool, since: str | None, lines: int) -> None:
        from goship.deploy.status import logs

        logs(self.env, host=host, follow=follow, since=since, lines=lines)


@dataclass(frozen=True)
class TargetKind:
    name: str
    selected: Callable[[Target_], bool]  # does this environment's table choose the kind?
    transports: Callable[[Environment], list[Transport]]
    addresses: Callable[[Environment], list[str]]
    # A loader, not the class: a kind's engine (lightkube for Kubernetes) is imported only
    # when an environment uses it, which keeps `goship rollback` on hosts fast to start.
    engine: Callable[[], type[DeployTarget]]
    local: bool = False  # the deploy runs on this machine (a user's home, no root needed)


def _ssh_transports(env: Environment) -> list[Transport]:
    return ssh_transports(env, env.target.hosts or [])


def ssh_transports(env: Environment, specs: list[str]) -> list[Transport]:
    """SSH to `[user@]host[:port]` specs with the environment's identity and sudo rule (its
    own hosts, or proxy.lb.hosts)."""
    t = env.target
    identity = str(Path(os.path.expanduser(t.identity_file))) if t.identity_file else None
    out: list[Transport] = []
    for spec in specs:
        user = spec.split("@", 1)[0] if "@" in spec else None
        sudo = t.sudo if t.sudo is not None else (user is not None and user != "root")
        out.append(SshTransport(spec, SshOptions(identity_file=identity, sudo=sudo)))
    return out


def _lab_transports(env: Environment) -> list[Transport]:
    from goship.lab import hosts as lab_hosts

    return lab_hosts.transports(env.target.lab or 0)


def _lab_addresses(env: Environment) -> list[str]:
    from goship.lab.layout import HostLayout

    return [HostLayout(i).addr for i in range(1, (env.target.lab or 0) + 1)]


def _kube_target() -> type[DeployTarget]:
    from goship.kube.target import KubeTarget

    return KubeTarget


REGISTRY: dict[str, TargetKind] = {
    k.name: k for k in (
        TargetKind("hosts", lambda t: bool(t.hosts), _ssh_transports,
                   lambda env: [split_host(s)[1] for s in env.target.hosts or []],
                   lambda: HostFleet),
        TargetKind("local", lambda t: t.local, lambda env: [LocalTransport("local")],
                   lambda env: ["127.0.0.1"], lambda: HostFleet, local=True),
        TargetKind("lab", lambda t: t.lab is not None, _lab_transports, _lab_addresses,
                   lambda: HostFleet),
        # No hosts of its own: the cluster's API server is reached with its kubeconfig.
        TargetKind("kubernetes", lambda t: t.kubernetes is not None, lambda env: [],
                   lambda env: [], _kube_target),
    )
}


def chosen(t: Target_) -> list[str]:
    """The kinds an environment's table selects (exactly one is valid)."""
    return [name for name, k in REGISTRY.items() if k.selected(t)]


def kind(env: Environment) -> TargetKind:
    return REGISTRY[env.target.kind]


def transports(env: Environment) -> list[Transport]:
    return kind(env).transports(env)


def addresses(env: Environment) -> list[str]:
    return kind(env).addresses(env)


def deploy_target(project: Project, env: Environment) -> DeployTarget:
    return kind(env).engine()(project, env)
