"""What each lab host of the Kubernetes lab runs, as files: pure functions of the host
list and the certificates, tested as data. `kubernetes.py` writes and starts them."""

from __future__ import annotations

import base64
import json
import shlex

from goship.lab.kube_pki import FRONT_PROXY_CN, METRICS_SERVER_USER
from goship.lab.layout import HostLayout

CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service: the first address of SERVICE_CIDR
CLUSTER_DOMAIN = "cluster.local"
API_PORT = 6443
ETC = "/etc/goship-kube"
PKI = f"{ETC}/pki"
CONTAINERD_ROOT = "/var/lib/goship-containerd"
CONTAINERD_SOCK = "/run/containerd/containerd.sock"
CNI_BIN = "/usr/lib/cni"  # Debian's containernetworking-plugins
CNI_BRIDGE = "cni0"
CONTROL_UNITS = ("etcd.service", "kube-apiserver.service", "kube-controller-manager.service",
                 "kube-scheduler.service", "metrics-server.service")
METRICS_PORT = 4443
METRICS_API = "v1beta1.metrics.k8s.io"
METRIC_RESOLUTION = "15s"  # as upstream's manifests (the binary's default is 60 s)
HPA_SYNC = "5s"
NODE_UNITS = ("goship-kube-network.service", "containerd.service", "kubelet.service",
              "kube-proxy.service")
# Masked on every lab host (a fresh server runs neither): unmasked where the cluster needs it.
DEBIAN_UNITS = ("etcd.service", "containerd.service")


def node_name(h: HostLayout) -> str:
    return f"lab-{h.name}"  # the host's hostname


def pod_subnet(h: HostLayout) -> str:
    """Each node's own /24 of CLUSTER_CIDR, by host index (h1: 10.244.1.0/24)."""
    return f"10.244.{h.index}.0/24"


def api_url(control: HostLayout) -> str:
    return f"https://{control.addr}:{API_PORT}"


def kubeconfig(server: str, ca: bytes, cert: bytes, key: bytes, user: str) -> str:
    """A kubeconfig with everything embedded (JSON is YAML; kubectl reads either)."""
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "goship-lab", "cluster": {
            "server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": user, "user": {
            "client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": "goship-lab", "context": {"cluster": "goship-lab", "user": user}}],
        "current-context": "goship-lab",
    }, indent=2) + "\n"


def _unit(description: str, argv: list[str], after: str = "network.target",
          extra: str = "") -> str:
    # binary and component on the first line, one flag a line after
    words = [" ".join(shlex.quote(a) for a in argv[:2]), *(shlex.quote(a) for a in argv[2:])]
    lines = " \\\n    ".join(words)
    return (f"[Unit]\nDescription={description} (goship lab)\nAfter={after}\n\n"
            f"[Service]\nExecStart={lines}\nRestart=on-failure\nRestartSec=2\n{extra}"
            f"\n[Install]\nWantedBy=multi-user.target\n")


def etcd_default() -> str:
    """/etc/default/etcd for Debian's etcd.service: one member, on loopback only (only the
    API server on the same host talks to it)."""
    return ("ETCD_LISTEN_CLIENT_URLS=http://127.0.0.1:2379\n"
            "ETCD_ADVERTISE_CLIENT_URLS=http://127.0.0.1:2379\n"
            "ETCD_LISTEN_PEER_URLS=http://127.0.0.1:2380\n"
            "ETCD_INITIAL_ADVERTISE_PEER_URLS=http://127.0.0.1:2380\n"
            "ETCD_INITIAL_CLUSTER=lab-h1=http://127.0.0.1:2380\n"
            "ETCD_NAME=lab-h1\n"
            "ETCD_DATA_DIR=/var/lib/etcd/goship-lab\n")


def control_units(control: HostLayout, binary: str) -> dict[str, str]:
    """kube-apiserver, controller-manager and scheduler units for h1."""
    apiserver = [
        binary, "kube-apiserver",
        f"--advertise-address={control.addr}", f"--secure-port={API_PORT}",
        "--etcd-servers=http://127.0.0.1:2379",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--client-ca-file={PKI}/ca.crt",
        f"--tls-cert-file={PKI}/apiserver.crt", f"--tls-private-key-file={PKI}/apiserver.key",
        f"--kubelet-certificate-authority={PKI}/ca.crt",
        f"--kubelet-client-certificate={PKI}/apiserver-kubelet-client.crt",
        f"--kubelet-client-key={PKI}/apiserver-kubelet-client.key",
        "--kubelet-preferred-address-types=InternalIP",
        f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
        f"--service-account-key-file={PKI}/sa.pub",
        f"--service-account-signing-key-file={PKI}/sa.key",
        "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true", "--profiling=false",
        # The aggregation layer, for metrics.k8s.io: the API server forwards to
        # metrics-server as front-proxy-client, the user in X-Remote-* headers, straight to
        # the endpoint (this host) rather than through a ClusterIP.
        f"--requestheader-client-ca-file={PKI}/ca.crt",
        f"--requestheader-allowed-names={FRONT_PROXY_CN}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={PKI}/front-proxy-client.crt",
        f"--proxy-client-key-file={PKI}/front-proxy-client.key",
        "--enable-aggregator-routing=true",
    ]
    controller = [
        binary, "kube-controller-manager",
        f"--kubeconfig={ETC}/controller-manager.kubeconfig", "--bind-address=127.0.0.1",
        "--leader-elect=false", "--use-service-account-credentials=true",
        f"--service-account-private-key-file={PKI}/sa.key",
        f"--root-ca-file={PKI}/ca.crt",
        f"--cluster-signing-cert-file={PKI}/ca.crt",
        f"--cluster-signing-key-file={PKI}/ca.key",
        f"--service-cluster-ip-range={SERVICE_CIDR}", "--allocate-node-cidrs=false",
        "--profiling=false",
        # The autoscaler looks every 5 s (15 s upstream): the lab's tests see it act sooner;
        # what it decides is the same.
        f"--horizontal-pod-autoscaler-sync-period={HPA_SYNC}",
    ]
    scheduler = [binary, "kube-scheduler", f"--kubeconfig={ETC}/scheduler.kubeconfig",
                 "--bind-address=127.0.0.1", "--leader-elect=false", "--profiling=false"]
    api_after = "network.target etcd.service"
    return {
        "kube-apiserver.service": _unit("Kubernetes API server", apiserver, api_after,
                                        "LimitNOFILE=65536\n"),
        "kube-controller-manager.service": _unit("Kubernetes controller manager", controller,
                                                 "kube-apiserver.service"),
        "kube-scheduler.service": _unit("Kubernetes scheduler", scheduler,
                                        "kube-apiserver.service"),
    }


def metrics_server_unit(control: HostLayout, binary: str) -> str:
    """metrics-server on the control host (its image cannot be pulled here), serving the
    API server at METRICS_PORT; the kubelets' serving certificates are checked against the
    lab CA, as the API server checks them."""
    kcfg = f"{ETC}/metrics-server.kubeconfig"
    argv = [
        binary, f"--secure-port={METRICS_PORT}", f"--bind-address={control.addr}",
        f"--tls-cert-file={PKI}/metrics-server.crt",
        f"--tls-private-key-file={PKI}/metrics-server.key",
        f"--kubeconfig={kcfg}", f"--authentication-kubeconfig={kcfg}",
        f"--authorization-kubeconfig={kcfg}",
        f"--requestheader-client-ca-file={PKI}/ca.crt",
        f"--requestheader-allowed-names={FRONT_PROXY_CN}",
        f"--kubelet-certificate-authority={PKI}/ca.crt",
        "--kubelet-preferred-address-types=InternalIP",
        f"--metric-resolution={METRIC_RESOLUTION}",
    ]
    return _unit("Kubernetes resource metrics (metrics-server)", argv, "kube-apiserver.service")


def metrics_server_objects(control: HostLayout, ca: bytes) -> dict[str, object]:
    """What registers the control host's metrics-server as metrics.k8s.io (a List for
    `kubectl apply`): its permissions (upstream's manifests/base/rbac.yaml, bound to the
    certificate's user instead of a ServiceAccount), a Service without a selector whose
    Endpoints name the control host, and the APIService, trusting the lab CA."""
    ns = "kube-system"
    user = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
            "name": METRICS_SERVER_USER}

    def binding(kind: str, name: str, role_kind: str, role: str,
                namespace: str | None = None) -> dict[str, object]:
        meta: dict[str, object] = {"name": name}
        if namespace:
            meta["namespace"] = namespace
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                            "name": role},
                "subjects": [user]}

    aggregate = {f"rbac.authorization.k8s.io/aggregate-to-{r}": "true"
                 for r in ("view", "edit", "admin")}
    items: list[dict[str, object]] = [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "system:aggregated-metrics-reader", "labels": aggregate},
         "rules": [{"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "system:metrics-server"},
         "rules": [{"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                   {"apiGroups": [""], "resources": ["pods", "nodes"],
                    "verbs": ["get", "list", "watch"]}]},
        binding("ClusterRoleBinding", "system:metrics-server", "ClusterRole",
                "system:metrics-server"),
        binding("ClusterRoleBinding", "metrics-server:system:auth-delegator", "ClusterRole",
                "system:auth-delegator"),
        binding("RoleBinding", "metrics-server-auth-reader", "Role",
                "extension-apiserver-authentication-reader", ns),
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "metrics-server", "namespace": ns},
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": METRICS_PORT}]}},
        {"apiVersion": "v1", "kind": "Endpoints",
         "metadata": {"name": "metrics-server", "namespace": ns},
         "subsets": [{"addresses": [{"ip": control.addr}],
                      "ports": [{"name": "https", "port": METRICS_PORT}]}]},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": METRICS_API},
         "spec": {"service": {"name": "metrics-server", "namespace": ns, "port": 443},
                  "group": "metrics.k8s.io", "version": "v1beta1",
                  "caBundle": base64.b64encode(ca).decode(),
                  "groupPriorityMinimum": 100, "versionPriority": 100}},
    ]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def network_unit(h: HostLayout, hosts: list[HostLayout]) -> str:
    """Forwarding on, and a route to every other node's pod subnet via that node: the lab
    hosts share one bridge, so plain routes carry pod traffic between them. Lab hosts have
    no default route, so the Service range gets one too: without it a connection from the
    host to a ClusterIP fails before kube-proxy's rules can rewrite its destination."""
    starts = ["/usr/sbin/sysctl -w net.ipv4.ip_forward=1",
              f"/sbin/ip route replace {SERVICE_CIDR} dev eth0"]
    starts += [f"/sbin/ip route replace {pod_subnet(o)} via {o.addr} dev eth0"
               for o in hosts if o.index != h.index]
    body = "".join(f"ExecStart={s}\n" for s in starts)
    return ("[Unit]\nDescription=Pod routes between lab nodes (goship lab)\n"
            "Before=kubelet.service\n\n"
            f"[Service]\nType=oneshot\nRemainAfterExit=yes\n{body}"
            "\n[Install]\nWantedBy=multi-user.target\n")


def node_units(h: HostLayout, hosts: list[HostLayout], binary: str) -> dict[str, str]:
    kubelet = [binary, "kubelet", f"--config={ETC}/kubelet.json",
               f"--kubeconfig={ETC}/kubelet.kubeconfig", f"--node-ip={h.addr}",
               f"--hostname-override={node_name(h)}"]
    proxy = [binary, "kube-proxy", f"--config={ETC}/kube-proxy.json"]
    return {
        "goship-kube-network.service": network_unit(h, hosts),
        "kubelet.service": _unit("Kubernetes node agent", kubelet,
                                 "containerd.service goship-kube-network.service"),
        "kube-proxy.service": _unit("Kubernetes Service proxy", proxy,
                                    "goship-kube-network.service"),
    }


CERTS_D = "/etc/containerd/certs.d"


def containerd_config() -> str:
    """containerd 1.6 (Debian) for the CRI plugin on a lab host. Each line learnt from a
    failure (docs/lab.md): a fresh root and the native snapshotter (overlay snapshots cannot
    stack on the host's overlay root), restrict_oom_score_adj (lowering oom_score_adj is
    denied here, and runc then fails every sandbox), Debian's CNI path, cgroupfs."""
    return f"""version = 2
root = "{CONTAINERD_ROOT}"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.overlayfs", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{CONTAINERD_SOCK}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.6"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "/etc/cni/net.d"
  # hosts.toml per registry: a registry on a lab host speaks plain HTTP (as the lab's
  # Docker engines' insecure-registries say); every other one is untouched.
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{CERTS_D}"
"""


LAB_REGISTRY_PORT = 5000


def registry_hosts(hosts: list[HostLayout]) -> dict[str, str]:
    """containerd's hosts.toml for a registry on each lab host's port 5000 (plain HTTP):
    path under CERTS_D -> text."""
    out = {}
    for h in hosts:
        server = f"{h.addr}:{LAB_REGISTRY_PORT}"
        out[f"{server}/hosts.toml"] = (f'server = "http://{server}"\n\n'
                                       f'[host."http://{server}"]\n'
                                       f'  capabilities = ["pull", "resolve"]\n')
    return out


def cni_conflist(h: HostLayout) -> str:
    return json.dumps({
        "cniVersion": "1.0.0", "name": "goship-lab",
        "plugins": [
            {"type": "bridge", "bridge": CNI_BRIDGE, "isGateway": True, "ipMasq": True,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": pod_subnet(h)}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=2) + "\n"


def kubelet_config(h: HostLayout) -> str:
    return json.dumps({
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "authentication": {"x509": {"clientCAFile": f"{PKI}/ca.crt"},
                           "webhook": {"enabled": True}, "anonymous": {"enabled": False}},
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCK}",
        "clusterDomain": CLUSTER_DOMAIN,
        "tlsCertFile": f"{PKI}/kubelet-{node_name(h)}-serving.crt",
        "tlsPrivateKeyFile": f"{PKI}/kubelet-{node_name(h)}-serving.key",
        "readOnlyPort": 0,
        # The host's disk is a tmpfs-backed overlay and its memory the machine's: evict
        # only when really short, never because the lab looks like a small node.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                         "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
    }, indent=2) + "\n"


def kube_proxy_config(h: HostLayout) -> str:
    return json.dumps({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": f"{ETC}/kube-proxy.kubeconfig"},
        "hostnameOverride": node_name(h),
        "mode": "iptables",
        "clusterCIDR": CLUSTER_CIDR,
        # conntrack sysctls outside the initial network namespace are read-only: leave them.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                      "tcpCloseWaitTimeout": "0s"},
    }, indent=2) + "\n"
