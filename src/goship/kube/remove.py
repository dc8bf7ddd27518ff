"""`goship remove ENV` on a Kubernetes environment: everything goship made for the app in
its namespace (Deployments of every track and color, Services, the autoscaler, the
disruption budget, each release's ConfigMaps and Secrets, the pull Secret, the journal),
then its deploy lock, and the edge's site on `proxy.lb.hosts`. Other apps in the namespace
are left alone: only objects labelled with the app's name and goship as their manager go
(and the journal and Lease, named for the app)."""

from __future__ import annotations

from collections.abc import Callable

from goship.config import Environment, Project
from goship.errors import GoshipError
from goship.ui import ui


def remove(project: Project, env: Environment, *, yes: bool, dry_run: bool, force: bool,
           ask: Callable[[str], str] | None = None, tty: bool | None = None) -> int:
    from goship.deploy import lb
    from goship.deploy.remove import confirm
    from goship.kube.lease import lease_name
    from goship.kube.target import KubeTarget

    target = KubeTarget(project, env)
    app = env.config.app.name
    cluster = target._cluster()
    found = cluster.app_objects(app)
    ui.out(f"remove {app} from {env.name}: namespace {cluster.namespace}")
    for kind, name in found:
        ui.out(f"  delete {kind.lower()}/{name}")
    if found:
        ui.out(f"  delete lease/{lease_name(app)} (the deploy lock)")
    balancer = lb.removal_lines(env)
    for line in balancer:
        ui.out(line)
    if dry_run:
        ui.info("dry run: nothing was changed")
        return 0
    if not found and not balancer:
        ui.out(f"nothing of {app} to remove on {env.name}")
        return 0
    if not yes:
        confirm(app, env.name, f"namespace {cluster.namespace} of {env.name}", ask, tty)
    failed = []
    with target._locked(cluster, "remove", {"force": force}):
        for kind, name in found:
            try:
                cluster.delete(kind, name)
                ui.info(f"deleted {kind.lower()}/{name}")
            except GoshipError as e:
                failed.append(e.message)
    if failed:  # the lock stays for the next try to take (it is released, not deleted)
        for message in failed:
            ui.warn(message)
        ui.out(f"remove {app} from {env.name}: {len(failed)} object(s) not deleted; run it "
               "again")
        return 1
    cluster.delete_lease(lease_name(app))
    for line in lb.uninstall(env):
        ui.out(line)
    ui.out(f"removed {app} from {env.name}: {len(found)} object(s)")
    return 0
