"""`goship lab up --kubernetes`: a real Kubernetes cluster on the lab hosts.

h1 runs the control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler);
every host runs containerd, kubelet, kube-proxy and a bridge CNI network with its own pod
subnet, each a systemd unit of that host. The files come from kube_render (pure), the
certificates from kube_pki, the binaries from kube_build's cache. Everything lives in the
hosts' disks and /run/goship-lab/kubernetes, so `lab down` removes it with the hosts."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from goship.errors import LabError, PrerequisiteError, UsageError
from goship.lab import kube_build, kube_pki, kube_render, layout, metrics_build, tool_build
from goship.lab.kube_render import ETC, PKI
from goship.lab.layout import LAB_DIR, HostLayout

# What a host runs, by file, and the Debian package that installs it (hosts boot from this
# machine's root, so they are installed here).
HOST_BINARIES = {
    "/usr/bin/etcd": "etcd-server", "/usr/bin/containerd": "containerd",
    "/usr/bin/ctr": "containerd", "/usr/sbin/runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
}
PACKAGES = ("etcd-server", "containerd", "runc", "containernetworking-plugins")
IMAGES_DIR = "/var/lib/goship-kube-images"  # tars on their way into containerd, per host
READY_TIMEOUT = 180.0
Progress = Callable[[str], None]


def kube_dir() -> Path:
    return LAB_DIR / "kubernetes"


def kubeconfig_path() -> Path:
    """The admin kubeconfig on this machine (`goship lab kubeconfig` prints it)."""
    return kube_dir() / "admin.kubeconfig"


def kubectl_path() -> Path:
    return kube_dir() / "bin" / "kubectl"


def require() -> None:
    missing = sorted({pkg for path, pkg in HOST_BINARIES.items() if not Path(path).exists()})
    if missing:
        pkgs = " ".join(missing)
        raise PrerequisiteError(
            f"the Kubernetes lab needs packages that are not installed: {pkgs}",
            hint=f"sudo goship lab up --kubernetes --install (or apt-get install -y {pkgs})")
    kube_build.go_tool()


def status() -> dict[str, Any] | None:
    """The cluster the lab state records, or None."""
    found = layout.read_state().get("kubernetes")
    return found if isinstance(found, dict) else None


def host_files(h: HostLayout, hosts: list[HostLayout], pki: kube_pki.Pki,
               binary: str, metrics_binary: str) -> dict[str, tuple[bytes, int]]:
    """Every file the cluster puts on host h: path -> (content, mode). Keys and the CA's
    private key only where they are used (h1 holds the control plane's and
    metrics-server's)."""
    control = hosts[0]
    node = kube_render.node_name(h)
    server = kube_render.api_url(control)
    ca = pki.pem("ca.crt")

    def kcfg(stem: str, user: str) -> bytes:
        return kube_render.kubeconfig(server, ca, pki.pem(f"{stem}.crt"), pki.pem(f"{stem}.key"),
                                      user).encode()

    files: dict[str, tuple[bytes, int]] = {
        f"{PKI}/ca.crt": (ca, 0o644),
        f"{PKI}/kubelet-{node}-serving.crt": (pki.pem(f"kubelet-{node}-serving.crt"), 0o644),
        f"{PKI}/kubelet-{node}-serving.key": (pki.pem(f"kubelet-{node}-serving.key"), 0o600),
        f"{ETC}/kubelet.kubeconfig": (kcfg(f"kubelet-{node}", f"system:node:{node}"), 0o600),
        f"{ETC}/kube-proxy.kubeconfig": (kcfg("kube-proxy", "system:kube-proxy"), 0o600),
        f"{ETC}/kubelet.json": (kube_render.kubelet_config(h).encode(), 0o644),
        f"{ETC}/kube-proxy.json": (kube_render.kube_proxy_config(h).encode(), 0o644),
        "/etc/containerd/config.toml": (kube_render.containerd_config().encode(), 0o644),
        "/etc/cni/net.d/10-goship-lab.conflist": (kube_render.cni_conflist(h).encode(),
                                                   0o644),
    }
    for path, text in kube_render.registry_hosts(hosts).items():
        files[f"{kube_render.CERTS_D}/{path}"] = (text.encode(), 0o644)
    units = kube_render.node_units(h, hosts, binary)
    if h.index == control.index:
        for name in ("ca.key", "sa.key", "sa.pub", "apiserver.crt", "apiserver.key",
                     "apiserver-kubelet-client.crt", "apiserver-kubelet-client.key",
                     "front-proxy-client.crt", "front-proxy-client.key",
                     "metrics-server.crt", "metrics-server.key"):
            files[f"{PKI}/{name}"] = (pki.pem(name), 0o644 if name.endswith((".crt", ".pub"))
                                      else 0o600)
        files[f"{ETC}/controller-manager.kubeconfig"] = (
            kcfg("controller-manager", "system:kube-controller-manager"), 0o600)
        files[f"{ETC}/scheduler.kubeconfig"] = (kcfg("scheduler", "system:kube-scheduler"),
                                                 0o600)
        files[f"{ETC}/metrics-server.kubeconfig"] = (
            kcfg("metrics-server", kube_pki.METRICS_SERVER_USER), 0o600)
        files["/etc/default/etcd"] = (kube_render.etcd_default().encode(), 0o644)
        units |= kube_render.control_units(control, binary)
        units["metrics-server.service"] = kube_render.metrics_server_unit(control,
                                                                          metrics_binary)
    for name, text in units.items():
        files[f"/etc/systemd/system/{name}"] = (text.encode(), 0o644)
    return files


def _write_host(h: HostLayout, files: dict[str, tuple[bytes, int]]) -> None:
    for path, (data, mode) in files.items():
        target = h.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        tmp = target.with_name(target.name + ".goship-tmp")
        tmp.write_bytes(data)
        tmp.chmod(mode)
        tmp.replace(target)
    (h.root / ETC.lstrip("/")).chmod(0o700)
    units = h.root / "etc" / "systemd" / "system"
    for unit in kube_render.DEBIAN_UNITS:
        if unit == "etcd.service" and "/etc/systemd/system/kube-apiserver.service" not in files:
            continue  # etcd only where the control plane runs
        link = units / unit
        if link.is_symlink() and os.readlink(link) == "/dev/null":
            link.unlink()


def _ssh(h: HostLayout, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    from goship.lab.hosts import ssh_argv

    return subprocess.run([*ssh_argv(h), command], capture_output=True, text=True,
                          timeout=timeout, check=False)


def unit_log(h: HostLayout, unit: str, lines: int = 6) -> str:
    res = _ssh(h, f"journalctl -u {shlex.quote(unit)} -n {lines} --no-pager -o cat", 30)
    return " | ".join(x.strip() for x in res.stdout.splitlines() if x.strip()) or "(no log)"


def _start(h: HostLayout, units: tuple[str, ...], then: str = "") -> None:
    names = " ".join(units)
    res = _ssh(h, f"systemctl daemon-reload && systemctl enable --now {names}{then}")
    if res.returncode != 0:
        failed = [u for u in units
                  if _ssh(h, f"systemctl is-active --quiet {u}", 30).returncode != 0]
        detail = "; ".join(f"{u}: {unit_log(h, u)}" for u in failed) or res.stderr.strip()
        raise LabError(f"{h.name}: Kubernetes units did not start: {detail}")


class Api:
    """The API server, as the admin, from this machine."""

    def __init__(self, server: str, pki_dir: Path) -> None:
        self.server = server
        self.ctx = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
        self.ctx.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))

    def get(self, path: str, timeout: float = 5) -> Any:
        with urllib.request.urlopen(self.server + path, context=self.ctx,  # noqa: S310
                                    timeout=timeout) as r:
            body = r.read().decode()
        return json.loads(body) if body.startswith(("{", "[")) else body

    def try_get(self, path: str) -> Any:
        try:
            return self.get(path)
        except (OSError, urllib.error.URLError, ValueError):
            return None


def _apply(objects: dict[str, Any]) -> None:
    """Objects the lab itself owns (not the app's: goship deploy applies those), applied
    server-side as the admin."""
    res = subprocess.run([str(kubectl_path()), "apply", "--server-side",
                          "--field-manager=goship-lab", "-f", "-"],
                         input=json.dumps(objects), capture_output=True, text=True,
                         timeout=60, check=False)
    if res.returncode != 0:
        raise LabError(f"applying the lab's cluster objects failed: {res.stderr.strip()}")


def api_available(service: dict[str, Any] | None) -> bool:
    """An APIService whose Available condition is True (the API server reaches it)."""
    return any(c.get("type") == "Available" and c.get("status") == "True"
               for c in ((service or {}).get("status") or {}).get("conditions") or [])


def ready_nodes(nodes: dict[str, Any] | None) -> set[str]:
    """Names of the nodes whose Ready condition is True, from a NodeList."""
    ready = set()
    for item in (nodes or {}).get("items", []):
        for cond in item.get("status", {}).get("conditions", []):
            if cond.get("type") == "Ready" and cond.get("status") == "True":
                ready.add(item["metadata"]["name"])
    return ready


def _wait(what: str, check: Callable[[], bool], timeout: float,
          explain: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise LabError(f"{what} after {timeout:g}s: {explain()}",
                   hint="`goship lab down` removes the lab")


def _load_or_issue_pki(hosts: list[HostLayout]) -> kube_pki.Pki:
    pki_dir = kube_dir() / "pki"
    if pki_dir.is_dir():
        return kube_pki.Pki({p.name: p.read_bytes() for p in pki_dir.iterdir()})
    control = hosts[0]
    specs = kube_pki.plan(control.addr, kube_render.SERVICE_IP, kube_render.CLUSTER_DOMAIN,
                          kube_render.node_name(control),
                          [(kube_render.node_name(h), h.addr) for h in hosts])
    pki = kube_pki.issue(specs)
    pki_dir.mkdir(parents=True, mode=0o700)
    for name, data in pki.files.items():
        fd = os.open(pki_dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    return pki


def check_nodes(hosts: list[HostLayout]) -> None:
    """A cluster of another size is refused (before any host boots): nodes are not added
    to or taken from a running cluster."""
    names = [h.name for h in hosts]
    found = status()
    if found is not None and found.get("nodes") != names:
        raise UsageError(f"the lab's Kubernetes cluster runs on {', '.join(found['nodes'])}, "
                         f"not {', '.join(names)}",
                         hint="`goship lab down` first, then `goship lab up --kubernetes`")


def enable(hosts: list[HostLayout], progress: Progress = lambda _m: None) -> None:
    """The cluster on `hosts` (h1 first), up and every node Ready. Runs again harmlessly on
    a cluster that is up; a cluster of another size must go first (`lab down`)."""
    require()
    check_nodes(hosts)
    names = [h.name for h in hosts]
    b = kube_build.ensure(progress)
    metrics = metrics_build.ensure(progress)
    kube_dir().mkdir(parents=True, exist_ok=True)
    kube_dir().chmod(0o700)
    pki = _load_or_issue_pki(hosts)
    control = hosts[0]
    server = kube_render.api_url(control)
    admin = kube_render.kubeconfig(server, pki.pem("ca.crt"), pki.pem("admin.crt"),
                                   pki.pem("admin.key"), "goship-lab-admin")
    fd = os.open(kubeconfig_path(), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(admin)
    kubectl_path().parent.mkdir(exist_ok=True)
    kubectl_path().unlink(missing_ok=True)
    kubectl_path().write_text(f'#!/bin/sh\nexec {shlex.quote(str(b.multicall))} kubectl '
                              f'--kubeconfig={shlex.quote(str(kubeconfig_path()))} "$@"\n')
    kubectl_path().chmod(0o755)

    progress(f"writing the cluster's files on {', '.join(names)}")
    binaries = {h.name: tool_build.host_path(h, b.multicall, "goship-kube")
                for h in hosts}
    metrics_binary = tool_build.host_path(control, metrics.path, "goship-metrics-server")
    for h in hosts:
        _write_host(h, host_files(h, hosts, pki, binaries[h.name], metrics_binary))
    api = Api(server, kube_dir() / "pki")

    progress(f"starting etcd and kube-apiserver on {control.name}")
    _start(control, ("etcd.service", "kube-apiserver.service"))
    _wait("kube-apiserver is not ready", lambda: api.try_get("/readyz") == "ok", 90,
          lambda: "; ".join(f"{u}: {unit_log(control, u)}"
                            for u in ("etcd.service", "kube-apiserver.service")))
    # metrics-server's permissions before it starts (it reads the API server's
    # authentication settings at start-up), and its registration as metrics.k8s.io.
    _apply(kube_render.metrics_server_objects(control, pki.pem("ca.crt")))
    # Before any pod: it makes each namespace's default ServiceAccount and kube-root-ca.crt.
    _start(control, ("kube-controller-manager.service", "kube-scheduler.service",
                     "metrics-server.service"))

    progress(f"starting containerd, kubelet and kube-proxy on {', '.join(names)}")

    def node(h: HostLayout) -> None:
        pause = tool_build.host_path(h, b.pause_tar, "goship-kube")
        _start(h, ("goship-kube-network.service", "containerd.service"))
        res = _ssh(h, "for i in $(seq 100); do ctr version >/dev/null 2>&1 && break; "
                      "sleep 0.2; done; ctr -n k8s.io images import --snapshotter native "
                      f"{shlex.quote(pause)} >/dev/null")
        if res.returncode != 0:
            raise LabError(f"{h.name}: importing the pause image failed: "
                           f"{res.stderr.strip()}; containerd: "
                           f"{unit_log(h, 'containerd.service')}")
        _start(h, ("kubelet.service", "kube-proxy.service"))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(node, hosts))
    wanted = {kube_render.node_name(h) for h in hosts}
    by_node = {kube_render.node_name(h): h for h in hosts}
    _wait("nodes not Ready", lambda: wanted <= ready_nodes(api.try_get("/api/v1/nodes")),
          READY_TIMEOUT,
          lambda: "; ".join(f"{n}: kubelet: {unit_log(by_node[n], 'kubelet.service')}"
                            for n in sorted(wanted - ready_nodes(api.try_get("/api/v1/nodes")))))
    _wait("no default ServiceAccount",
          lambda: api.try_get("/api/v1/namespaces/default/serviceaccounts/default") is not None,
          60, lambda: f"kube-controller-manager: "
                      f"{unit_log(control, 'kube-controller-manager.service')}")
    # The autoscaler's figures come through this API: up once the API server reaches
    # metrics-server (pods' CPU follows within a METRIC_RESOLUTION of their start).
    _wait("metrics.k8s.io is not available",
          lambda: api_available(api.try_get(
              f"/apis/apiregistration.k8s.io/v1/apiservices/{kube_render.METRICS_API}")),
          90, lambda: f"metrics-server: {unit_log(control, 'metrics-server.service')}")
    state = layout.read_state()
    state["kubernetes"] = {"nodes": names, "server": server, "version": kube_build.KUBE_VERSION,
                           "kubeconfig": str(kubeconfig_path()), "kubectl": str(kubectl_path())}
    layout.write_state(state)


def image_repository(tar: Path) -> str:
    """The repository a `goship package --image` tar is tagged with, as Kubernetes names it
    (hello-gin -> docker.io/library/hello-gin): `ctr images import` names an OCI layout's
    images by its ref.name annotation (the tag) under this base name."""
    import tarfile

    with tarfile.open(tar) as t:
        member = t.extractfile("manifest.json")
        tags = json.loads(member.read()) if member is not None else []
    if not tags or not tags[0].get("RepoTags"):
        raise UsageError(f"{tar}: no image tag in manifest.json",
                         hint="use an image tar from `goship package --image`")
    repo = str(tags[0]["RepoTags"][0]).rsplit(":", 1)[0]
    return qualified_repository(repo)


def qualified_repository(repo: str) -> str:
    """What the kubelet resolves an image name to (docker's normalization)."""
    first = repo.split("/", 1)[0]
    if "/" in repo and ("." in first or ":" in first or first == "localhost"):
        return repo
    return f"docker.io/{repo}" if "/" in repo else f"docker.io/library/{repo}"


def import_image(hosts: list[HostLayout], tar: Path, *, digests: bool = False) -> str:
    """An image tar (`goship package --image`) into containerd's k8s.io namespace on each
    host: pods run it with imagePullPolicy Never or IfNotPresent, no registry needed.
    With digests, also named REPO@sha256:MANIFEST, so a pod spec can pin the digest.
    Returns the repository it is imported under (docker.io/library/<app>)."""
    base = image_repository(tar)
    flags = "--digests " if digests else ""

    def one(h: HostLayout) -> None:
        target = h.root / IMAGES_DIR.lstrip("/") / tar.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tar, target)
        inside = f"{IMAGES_DIR}/{tar.name}"
        res = _ssh(h, f"ctr -n k8s.io images import {flags}--snapshotter native --base-name "
                      f"{shlex.quote(base)} {shlex.quote(inside)}; rc=$?; "
                      f"rm -f {shlex.quote(inside)}; exit $rc", timeout=300)
        if res.returncode != 0:
            raise LabError(f"{h.name}: `ctr images import {tar.name}` failed: "
                           f"{res.stderr.strip()}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, hosts))
    return base
