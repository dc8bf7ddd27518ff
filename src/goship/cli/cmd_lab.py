"""goship lab up|status|ssh|stop|start|cut|heal|down"""

from __future__ import annotations

import json
import os
import time

import click

from goship.cli.common import json_option
from goship.ui import ui


@click.group()
def lab() -> None:
    """A fleet of real Linux hosts on this machine, to rehearse deploys and to test.

    Each host has its own network namespace and address (10.78.0.1N), its own
    copy-on-write root, and systemd as PID 1 running sshd and nginx. Needs root.

    \b
    Example:
      sudo goship lab up --hosts 3
      goship lab ssh h1 -- systemctl is-system-running
      sudo goship lab down
    """


@lab.command()
@click.option("--hosts", "count", type=int, default=3, show_default=True,
              help="How many hosts (1 to 20).")
@click.option("--install", is_flag=True,
              help="First apt-get install the Debian packages the lab needs (as root).")
@click.option("--docker", is_flag=True,
              help="Also run a Docker engine on every host (for run.manager = \"docker\").")
@click.option("--kubernetes", is_flag=True,
              help="Also run a Kubernetes cluster: control plane on h1, a node on every host "
                   "(1 to 5 hosts; the first run builds the components, minutes).")
@click.option("--consul", is_flag=True,
              help="Also run Consul: servers on h1..h3 (h1 alone under 3 hosts), a client "
                   "agent on every other host (the first run builds it, minutes).")
@json_option
def up(count: int, install: bool, docker: bool, kubernetes: bool, consul: bool,
       as_json: bool) -> None:
    """Boot hosts h1..hN in parallel; returns when every sshd answers. Reuses a running lab.

    \b
    Example:
      sudo goship lab up --hosts 3
      sudo goship lab up --install    # on a fresh Debian machine
      sudo goship lab up --docker     # hosts with a Docker engine
      sudo goship lab up --hosts 2 --kubernetes   # a Kubernetes cluster of 2 nodes
      sudo goship lab up --hosts 4 --consul       # 3 Consul servers and a client
    """
    from goship.lab import hosts, system

    if install:
        extra: tuple[str, ...] = ()
        if kubernetes:
            from goship.lab.kubernetes import PACKAGES as KUBE_PACKAGES

            extra = KUBE_PACKAGES
        installed = system.install_packages(extra)
        ui.info(f"installed: {' '.join(installed)}" if installed
                else "the lab's Debian packages are all installed")
    started = time.monotonic()
    all_hosts, booted = hosts.up(count, docker=docker, kubernetes=kubernetes,
                                 consul=consul, progress=ui.info)
    elapsed = time.monotonic() - started
    kube = None
    if kubernetes:
        from goship.lab import kubernetes as k8s

        kube = k8s.status()
    from goship.lab import consul as lab_consul

    found = lab_consul.status() if consul else None
    if as_json:
        ui.out(json.dumps({"hosts": [{"name": h.name, "addr": h.addr} for h in all_hosts],
                           "booted": [h.name for h in booted], "seconds": round(elapsed, 2),
                           "kubernetes": kube, "consul": found}))
        return
    for h in all_hosts:
        note = "booted" if h in booted else "already up"
        ui.out(f"{h.name}  {h.addr}  {note}")
    ui.info(f"{len(booted)} booted, {len(all_hosts) - len(booted)} reused in {elapsed:.1f}s; "
            "use it with [env.lab] lab = N in goship.toml")
    if kube is not None:
        ui.out(_kube_line(kube))
    if found is not None:
        ui.out(lab_consul.summary(found))


def _kube_line(kube: dict[str, object]) -> str:
    nodes = kube.get("nodes")
    count = len(nodes) if isinstance(nodes, list) else 0
    return (f"kubernetes {kube.get('version')}  {count} node(s)  API {kube.get('server')}  "
            f"kubeconfig {kube.get('kubeconfig')}  kubectl {kube.get('kubectl')}")


@lab.command()
@json_option
def status(as_json: bool) -> None:
    """Each host: running, network (up or cut), sshd answering.

    \b
    Example:
      goship lab status --json
    """
    from goship.lab import hosts, system
    from goship.lab import kubernetes as k8s

    system.require()
    rows = hosts.status()
    kube = k8s.status()
    from goship.lab import consul as lab_consul

    found = lab_consul.status()
    live = lab_consul.live(found) if found is not None else None
    notes = hosts.boot_notes()
    if as_json:
        consul = {**found, **live} if found is not None and live is not None else None
        ui.out(json.dumps({"hosts": [r.as_dict() for r in rows], "kubernetes": kube,
                           "consul": consul, "boot_notes": notes}, indent=2))
        return
    if not rows:
        ui.out("no lab (start one with `goship lab up`)")
        return
    for r in rows:
        state = "running" if r.running else "stopped"
        ui.out(f"{r.name}  {r.addr}  {state}  network {r.network}  "
               f"ssh {'ok' if r.ssh else 'no'}")
    if kube is not None:
        ui.out(_kube_line(kube))
    if found is not None and live is not None:
        ui.out(f"{lab_consul.summary(found)}  leader {live['leader'] or 'none'}  "
               f"{len(live['alive'])} member(s) alive")
    for note in notes:
        ui.out(f"boot: {note}")


@lab.command()
def kubeconfig() -> None:
    """Print the path of the lab cluster's admin kubeconfig (`lab up --kubernetes`).

    \b
    Example:
      export KUBECONFIG=$(goship lab kubeconfig)
      $(dirname $KUBECONFIG)/bin/kubectl get nodes
    """
    from goship.errors import UsageError
    from goship.lab import kubernetes as k8s

    if k8s.status() is None or not k8s.kubeconfig_path().exists():
        raise UsageError("the lab runs no Kubernetes cluster",
                         hint="sudo goship lab up --hosts 2 --kubernetes")
    ui.out(str(k8s.kubeconfig_path()))


@lab.command(context_settings={"ignore_unknown_options": True})
@click.argument("host")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def ssh(ctx: click.Context, host: str, command: tuple[str, ...]) -> None:
    """Log in to a host, or run COMMAND there and exit with its status.

    \b
    Example:
      goship lab ssh h2
      goship lab ssh h2 -- journalctl -u nginx -n 20
    """
    import subprocess

    from goship.lab import hosts, layout, system

    system.require()
    h = hosts._known(host)
    argv = hosts.ssh_argv(h)
    if not command:
        os.execvp("ssh", [*argv[:1], "-t", *argv[1:]])  # noqa: S606 (replaces goship)
    res = subprocess.run([*argv, "--", *command], check=False)
    _ = layout
    ctx.exit(res.returncode)


def _host_action(name: str, verb: str, help_text: str) -> click.Command:
    @click.command(name=verb, help=help_text)
    @click.argument("host")
    def command(host: str) -> None:
        from goship.lab import hosts

        getattr(hosts, verb)(host)
        ui.out(f"{host}: {verb} done")

    return command


lab.add_command(_host_action(
    "stop", "stop", "Power a host off (every process ends at once; its disk stays).\n\n"
    "\b\nExample:\n  goship lab stop h2"))
lab.add_command(_host_action(
    "start", "start", "Boot a stopped host again; returns when sshd answers.\n\n"
    "\b\nExample:\n  goship lab start h2"))
lab.add_command(_host_action(
    "cut", "cut", "Cut a host off the network while it keeps running.\n\n"
    "\b\nExample:\n  goship lab cut h3"))
lab.add_command(_host_action(
    "heal", "heal", "Reconnect a host cut off with `cut`.\n\n\b\nExample:\n  goship lab heal h3"))


@lab.command()
def down() -> None:
    """Remove everything the lab made: processes, mounts, namespaces, links, bridge,
    firewall rule, state. Works after a crash too.

    \b
    Example:
      sudo goship lab down
    """
    from goship.lab import hosts

    removed = hosts.down()
    ui.out(f"lab removed ({', '.join(removed) or 'nothing was running'})")
