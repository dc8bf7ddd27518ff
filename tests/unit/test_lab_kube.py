"""The Kubernetes lab as data: certificates, kubeconfigs, per-node subnets, unit and config
files, the build's wrapper module and version stamp, the pause image (the cluster itself
runs in tests/e2e/test_lab_kubernetes.py)."""

from __future__ import annotations

import base64
import hashlib
import io
import ipaddress
import json
import re
import subprocess
import tarfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from goship.errors import LabError, PrerequisiteError, UsageError
from goship.lab import (
    kube_build,
    kube_pki,
    kube_render,
    kubernetes,
    layout,
    metrics_build,
    tool_build,
)
from goship.lab.layout import HostLayout
from tests.conftest import REPO, CliResult

Run = Callable[..., CliResult]
HOSTS = [HostLayout(i) for i in (1, 2, 3)]
NODES = [(kube_render.node_name(h), h.addr) for h in HOSTS]


@pytest.fixture(scope="module")
def pki() -> kube_pki.Pki:
    specs = kube_pki.plan("10.78.0.11", kube_render.SERVICE_IP, "cluster.local", "lab-h1", NODES)
    return kube_pki.issue(specs)


def cert(pki: kube_pki.Pki, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pki.pem(f"{name}.crt"))


def test_the_api_server_certificate_names_every_way_a_client_reaches_it(
        pki: kube_pki.Pki) -> None:
    san = cert(pki, "apiserver").extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert {"kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local", "lab-h1"} <= set(
        san.get_values_for_type(x509.DNSName))
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address(a) for a in ("10.78.0.11", "10.96.0.1", "127.0.0.1")}
    eku = cert(pki, "apiserver").extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_each_identity_is_the_one_kubernetes_authorizes(pki: kube_pki.Pki) -> None:
    def who(name: str) -> tuple[str, list[str]]:
        subject = cert(pki, name).subject
        cn = subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        orgs = [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        return str(cn), [str(o) for o in orgs]

    assert who("kubelet-lab-h2") == ("system:node:lab-h2", ["system:nodes"])
    assert who("admin")[1] == ["system:masters"]
    assert who("controller-manager") == ("system:kube-controller-manager", [])
    assert who("scheduler") == ("system:kube-scheduler", [])
    assert who("kube-proxy") == ("system:kube-proxy", [])
    serving = cert(pki, "kubelet-lab-h3-serving").extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert serving.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.78.0.13")]


def test_every_certificate_is_signed_by_the_lab_ca(pki: kube_pki.Pki) -> None:
    ca = x509.load_pem_x509_certificate(pki.pem("ca.crt"))
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    names = [n[:-4] for n in pki.files if n.endswith(".crt") and n != "ca.crt"]
    assert len(names) == 8 + 2 * len(HOSTS)
    for name in names:
        c = cert(pki, name)
        c.verify_directly_issued_by(ca)
        assert not c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    pub = ca.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    assert pki.pem("sa.key").startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pki.pem("sa.pub").startswith(b"-----BEGIN PUBLIC KEY-----")


def test_a_kubeconfig_embeds_server_ca_and_client_identity() -> None:
    text = kube_render.kubeconfig("https://10.78.0.11:6443", b"CA", b"CERT", b"KEY", "me")
    cfg = json.loads(text)
    assert cfg["current-context"] == "goship-lab"
    [cluster] = cfg["clusters"]
    assert cluster["cluster"]["server"] == "https://10.78.0.11:6443"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == b"CA"
    [user] = cfg["users"]
    assert user["name"] == "me"
    assert base64.b64decode(user["user"]["client-certificate-data"]) == b"CERT"
    assert base64.b64decode(user["user"]["client-key-data"]) == b"KEY"


def test_each_node_has_its_own_pod_subnet_apart_from_services_and_the_lab() -> None:
    cluster = ipaddress.ip_network(kube_render.CLUSTER_CIDR)
    subnets = [ipaddress.ip_network(kube_render.pod_subnet(HostLayout(i))) for i in range(1, 6)]
    assert len(set(subnets)) == 5
    assert all(s.subnet_of(cluster) for s in subnets)  # type: ignore[arg-type]
    for other in (kube_render.SERVICE_CIDR, f"{layout.NET}.0/24"):
        assert not cluster.overlaps(ipaddress.ip_network(other))
    assert ipaddress.ip_address(kube_render.SERVICE_IP) in ipaddress.ip_network(
        kube_render.SERVICE_CIDR)


def test_each_node_routes_the_other_nodes_pod_subnets_via_their_hosts() -> None:
    unit = kube_render.network_unit(HOSTS[1], HOSTS)
    assert "ExecStart=/sbin/ip route replace 10.244.1.0/24 via 10.78.0.11 dev eth0" in unit
    assert "ExecStart=/sbin/ip route replace 10.244.3.0/24 via 10.78.0.13 dev eth0" in unit
    assert "10.244.2.0/24" not in unit  # its own subnet is on its bridge
    assert "net.ipv4.ip_forward=1" in unit
    # no default route on a lab host: ClusterIPs need one to be connected to at all
    assert "ExecStart=/sbin/ip route replace 10.96.0.0/16 dev eth0" in unit


def test_the_cni_network_bridges_the_nodes_own_subnet() -> None:
    conf = json.loads(kube_render.cni_conflist(HOSTS[2]))
    bridge, portmap = conf["plugins"]
    assert bridge["type"] == "bridge"
    assert bridge["isGateway"]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.3.0/24"}]]
    assert portmap["type"] == "portmap"


def test_containerd_and_kubelet_carry_what_the_lab_host_needs() -> None:
    conf = tomllib.loads(kube_render.containerd_config())
    cri = conf["plugins"]["io.containerd.grpc.v1.cri"]
    assert conf["root"] == kube_render.CONTAINERD_ROOT
    assert cri["containerd"]["snapshotter"] == "native"
    assert cri["restrict_oom_score_adj"] is True
    assert cri["cni"]["bin_dir"] == "/usr/lib/cni"
    assert cri["sandbox_image"] == kube_build.PAUSE_IMAGE
    kubelet = json.loads(kube_render.kubelet_config(HOSTS[0]))
    assert kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["failSwapOn"] is False
    assert kubelet["tlsCertFile"].endswith("kubelet-lab-h1-serving.crt")
    proxy = json.loads(kube_render.kube_proxy_config(HOSTS[0]))
    assert proxy["mode"] == "iptables"
    assert proxy["hostnameOverride"] == "lab-h1"


def test_units_run_the_multicall_binary_with_the_node_ip() -> None:
    units = kube_render.node_units(HOSTS[1], HOSTS, "/cache/goship-kube")
    assert set(units) == {"goship-kube-network.service", "kubelet.service",
                          "kube-proxy.service"}
    kubelet = units["kubelet.service"]
    assert "ExecStart=/cache/goship-kube kubelet" in kubelet
    assert "--node-ip=10.78.0.12" in kubelet
    assert "--hostname-override=lab-h2" in kubelet
    control = kube_render.control_units(HOSTS[0], "/cache/goship-kube")
    api = control["kube-apiserver.service"]
    assert "--advertise-address=10.78.0.11" in api
    assert "--etcd-servers=http://127.0.0.1:2379" in api
    assert "kube-apiserver.service" in control["kube-controller-manager.service"]


def test_metrics_server_is_served_to_the_api_server_as_the_user_rbac_binds(
        pki: kube_pki.Pki) -> None:
    ms = cert(pki, "metrics-server")
    assert ms.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
        "system:metrics-server"
    eku = ms.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    san = ms.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    # the aggregator dials the Endpoints' address and checks the Service's DNS name
    assert "metrics-server.kube-system.svc" in san.get_values_for_type(x509.DNSName)
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.78.0.11")]
    front = cert(pki, "front-proxy-client")
    assert front.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
        "front-proxy-client"

    unit = kube_render.metrics_server_unit(HOSTS[0], "/cache/metrics-server")
    assert "ExecStart=/cache/metrics-server --secure-port=4443" in unit
    for flag in ("--bind-address=10.78.0.11", "--requestheader-allowed-names=front-proxy-client",
                 f"--kubelet-certificate-authority={kube_render.PKI}/ca.crt",
                 "--kubelet-preferred-address-types=InternalIP", "--metric-resolution=15s"):
        assert flag in unit
    assert "--kubelet-insecure-tls" not in unit
    api = kube_render.control_units(HOSTS[0], "/b")["kube-apiserver.service"]
    for flag in ("--requestheader-allowed-names=front-proxy-client",
                 f"--proxy-client-cert-file={kube_render.PKI}/front-proxy-client.crt",
                 "--enable-aggregator-routing=true"):
        assert flag in api
    cm = kube_render.control_units(HOSTS[0], "/b")["kube-controller-manager.service"]
    assert "--horizontal-pod-autoscaler-sync-period=5s" in cm

    objs = kube_render.metrics_server_objects(HOSTS[0], pki.pem("ca.crt"))
    by_kind = {(o["kind"], o["metadata"]["name"]): o for o in objs["items"]}  # type: ignore[index, union-attr, attr-defined]
    svc = by_kind[("APIService", "v1beta1.metrics.k8s.io")]["spec"]
    assert base64.b64decode(svc["caBundle"]) == pki.pem("ca.crt")  # no insecureSkipTLSVerify
    assert "insecureSkipTLSVerify" not in svc
    [subset] = by_kind[("Endpoints", "metrics-server")]["subsets"]
    assert subset["addresses"] == [{"ip": "10.78.0.11"}]
    assert subset["ports"][0]["port"] == kube_render.METRICS_PORT
    for name in ("system:metrics-server", "metrics-server:system:auth-delegator"):
        subjects = by_kind[("ClusterRoleBinding", name)]["subjects"]
        assert subjects == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                             "name": "system:metrics-server"}]
    rules = by_kind[("ClusterRole", "system:metrics-server")]["rules"]
    assert {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]} in rules


def test_the_metrics_server_build_is_pinned_stamped_and_cached_by_sources(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gomod = (metrics_build.SRC / "go.mod").read_text()
    assert f"sigs.k8s.io/metrics-server {metrics_build.VERSION}" in gomod
    assert "tool sigs.k8s.io/metrics-server/cmd/metrics-server" in gomod
    assert f"-X k8s.io/client-go/pkg/version.gitVersion={metrics_build.VERSION}" in \
        metrics_build.ldflags()
    monkeypatch.setenv("GOSHIP_METRICS_CACHE", str(tmp_path))
    t = metrics_build.tool()
    assert t.path == tmp_path / metrics_build.VERSION / "metrics-server"
    assert not t.is_cached()
    t.dir.mkdir()
    t.path.write_bytes(b"x")
    t.stamp.write_text("stale\n")
    assert not t.is_cached()  # the wrapper changed since: built again
    t.stamp.write_text(t.sources_hash() + "\n")
    assert t.is_cached()
    assert "goship.lab.metrics_build" in (REPO / "scripts" / "kubernetes.sh").read_text()


def test_a_cached_binary_is_used_in_place_unless_a_hosts_tmpfs_hides_it(
        tmp_path: Path) -> None:
    @dataclass
    class Host:
        root: Path

    host = cast(HostLayout, Host(tmp_path / "root"))
    # under /tmp, which each host mounts its own tmpfs over: copied into the host's root
    binary = tmp_path / "cache" / "metrics-server"
    binary.parent.mkdir()
    binary.write_bytes(b"ELF")
    assert tool_build.host_path(host, binary, "goship-x") == \
        "/usr/local/lib/goship-x/metrics-server"
    assert (host.root / "usr/local/lib/goship-x/metrics-server").read_bytes() == b"ELF"
    # elsewhere, seen through the host's overlay of this machine's root: used where it is
    cached = Path("/opt/goship-cache/metrics-server")
    (host.root / "opt/goship-cache").mkdir(parents=True)
    (host.root / "opt/goship-cache/metrics-server").write_bytes(b"ELF")
    assert tool_build.host_path(host, cached, "goship-x") == str(cached)


def test_only_the_control_host_gets_the_control_planes_keys(pki: kube_pki.Pki) -> None:
    h1 = kubernetes.host_files(HOSTS[0], HOSTS, pki, "/b", "/m")
    h2 = kubernetes.host_files(HOSTS[1], HOSTS, pki, "/b", "/m")
    for secret in ("ca.key", "sa.key", "apiserver.key", "front-proxy-client.key",
                   "metrics-server.key"):
        assert f"{kube_render.PKI}/{secret}" in h1
        assert f"{kube_render.PKI}/{secret}" not in h2
    assert "/etc/systemd/system/kube-apiserver.service" not in h2
    assert "/etc/systemd/system/metrics-server.service" not in h2
    unit = h1["/etc/systemd/system/metrics-server.service"][0].decode()
    assert "ExecStart=/m --secure-port=" in unit
    assert "/etc/default/etcd" in h1
    for files in (h1, h2):
        for path, (_, mode) in files.items():
            if path.endswith((".key", ".kubeconfig")):
                assert mode == 0o600, path
    node_cfg = json.loads(h2[f"{kube_render.ETC}/kubelet.kubeconfig"][0])
    assert node_cfg["clusters"][0]["cluster"]["server"] == "https://10.78.0.11:6443"


def test_ready_nodes_reads_the_ready_condition() -> None:
    nodes = {"items": [
        {"metadata": {"name": "lab-h1"},
         "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {"metadata": {"name": "lab-h2"},
         "status": {"conditions": [{"type": "Ready", "status": "False"}]}},
        {"metadata": {"name": "lab-h3"}, "status": {}},
    ]}
    assert kubernetes.ready_nodes(nodes) == {"lab-h1"}
    assert kubernetes.ready_nodes(None) == set()


def test_the_wrapper_module_replaces_every_staging_module_with_its_release() -> None:
    gomod = (kube_build.SRC / "go.mod").read_text()
    version = kube_build.KUBE_VERSION
    assert f"k8s.io/kubernetes {version}" in gomod
    staging = re.findall(r"^\s+(k8s\.io/[\w.-]+) => (k8s\.io/[\w.-]+) (v\S+)$", gomod, re.M)
    assert len(staging) == 31
    minor = "v0." + version.split(".", 1)[1]
    assert all(a == b and v == minor for a, b, v in staging)
    main_go = (kube_build.SRC / "main.go").read_text()
    for component in kube_build.COMPONENTS:
        assert f'"{component}"' in main_go


def test_an_image_is_imported_under_the_name_kubernetes_resolves(tmp_path: Path) -> None:
    assert kubernetes.qualified_repository("hello-gin") == "docker.io/library/hello-gin"
    assert kubernetes.qualified_repository("team/app") == "docker.io/team/app"
    assert kubernetes.qualified_repository("10.78.0.13:5000/team/app") == \
        "10.78.0.13:5000/team/app"
    tar = tmp_path / "image.tar"
    with tarfile.open(tar, "w") as t:
        body = json.dumps([{"RepoTags": ["hello-gin:v1.0.0-amd64"]}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body)
        t.addfile(info, io.BytesIO(body))
    assert kubernetes.image_repository(tar) == "docker.io/library/hello-gin"


def test_the_version_is_stamped_where_components_report_it() -> None:
    flags = kube_build.ldflags("v1.33.0")
    for pkg in kube_build.VERSION_PACKAGES:
        assert f"-X {pkg}.gitVersion=v1.33.0" in flags
        assert f"-X {pkg}.gitMinor=33" in flags


def test_the_cache_is_keyed_by_version_and_sources(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOSHIP_KUBE_CACHE", str(tmp_path))
    b = kube_build.binaries("v1.33.0")
    assert b.dir == tmp_path / "v1.33.0"
    assert not kube_build.is_cached(b)
    b.dir.mkdir()
    for f in (b.multicall, b.pause_tar):
        f.write_bytes(b"x")
    b.stamp.write_text("stale\n")
    assert not kube_build.is_cached(b)  # sources changed since: built again
    b.stamp.write_text(kube_build.sources_hash() + "\n")
    assert kube_build.is_cached(b)


def test_the_pause_image_is_named_as_containerd_asks_and_its_digests_hold() -> None:
    data = kube_build.pause_image(b"\x7fELF-pause", "amd64")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    index = json.loads(files["index.json"])
    [entry] = index["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == "registry.k8s.io/pause:3.6"
    assert json.loads(files["manifest.json"])[0]["RepoTags"] == ["registry.k8s.io/pause:3.6"]
    for name, blob in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(blob).hexdigest() == name.rsplit("/", 1)[1]
    manifest = json.loads(files[f"blobs/sha256/{entry['digest'][7:]}"])
    config = json.loads(files[f"blobs/sha256/{manifest['config']['digest'][7:]}"])
    assert config["config"]["Entrypoint"] == ["/pause"]
    assert config["architecture"] == "amd64"


def test_too_many_kubernetes_hosts_is_a_usage_error_before_anything_runs(
        run_cli: Run) -> None:
    r = run_cli("lab", "up", "--hosts", "6", "--kubernetes")
    assert r.code == 2
    assert "--hosts 6 --kubernetes: expected 1 to 5" in r.err


def test_kubeconfig_without_a_cluster_says_how_to_start_one(
        run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubernetes, "status", lambda: None)
    r = run_cli("lab", "kubeconfig")
    assert r.code == 2
    assert "the lab runs no Kubernetes cluster" in r.err
    assert "--kubernetes" in r.err


def test_the_test_command_builds_the_components_and_docs_describe_them() -> None:
    assert "scripts/components.sh" in (REPO / "scripts" / "test.sh").read_text()
    assert "step kubernetes kubernetes.sh" in (REPO / "scripts" / "components.sh").read_text()
    packages = (REPO / "scripts" / "packages.sh").read_text()
    doc = (REPO / "docs" / "lab.md").read_text()
    for pkg in kubernetes.PACKAGES:
        assert pkg in packages
        assert pkg in doc
    assert "goship lab up --hosts 3 --kubernetes" in doc
    assert "CoreDNS" in doc


def test_a_missing_package_is_named_with_the_command_that_installs_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubernetes, "HOST_BINARIES", {"/nonexistent/etcd": "etcd-server"})
    with pytest.raises(PrerequisiteError) as e:
        kubernetes.require()
    line = e.value.line()
    assert "the Kubernetes lab needs packages that are not installed: etcd-server" in line
    assert "apt-get install -y etcd-server" in line
    assert "--install" in line
    assert e.value.exit_code == 2


def test_a_unit_that_fails_to_start_is_reported_with_its_log_tail(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_ssh(h: HostLayout, command: str,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
        if command.startswith("journalctl -u kubelet.service"):
            return subprocess.CompletedProcess([], 0, "starting\nfailed to run Kubelet: boom\n",
                                               "")
        if "is-active --quiet kube-proxy.service" in command:
            return subprocess.CompletedProcess([], 0, "", "")
        return subprocess.CompletedProcess([], 1, "", "job failed")

    monkeypatch.setattr(kubernetes, "_ssh", fake_ssh)
    with pytest.raises(LabError) as e:
        kubernetes._start(HOSTS[1], ("kubelet.service", "kube-proxy.service"))
    assert e.value.line().startswith(
        "h2: Kubernetes units did not start: kubelet.service: starting | failed to run "
        "Kubelet: boom")
    assert "kube-proxy" not in e.value.line()


def test_a_cluster_of_another_size_is_refused_before_anything_boots(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubernetes, "status", lambda: {"nodes": ["h1"]})
    kubernetes.check_nodes(HOSTS[:1])  # the same cluster again: fine
    with pytest.raises(UsageError) as e:
        kubernetes.check_nodes(HOSTS[:2])
    assert e.value.line() == ("the lab's Kubernetes cluster runs on h1, not h1, h2; "
                              "`goship lab down` first, then `goship lab up --kubernetes`")
