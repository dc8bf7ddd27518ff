"""The lab cluster's certificates: one CA, a serving certificate for the API server, a
client certificate per component and node, and the service account key pair.

What each certificate says is data (`plan`), tested as such; `issue` signs it. ECDSA P-256
keys: quick to make, accepted by every component."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 30  # a lab lives for hours; a month covers a long-lived rehearsal
FRONT_PROXY_CN = "front-proxy-client"
METRICS_SERVER_USER = "system:metrics-server"


@dataclass(frozen=True)
class CertSpec:
    name: str  # file stem: <name>.crt / <name>.key
    common_name: str
    organizations: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    server: bool = False
    client: bool = False


@dataclass
class Pki:
    """PEM bytes by file name (ca.crt, admin.key, sa.pub, ...)."""
    files: dict[str, bytes] = field(default_factory=dict)

    def pem(self, name: str) -> bytes:
        return self.files[name]


def apiserver_sans(api_addr: str, service_ip: str, cluster_domain: str,
                   host_name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(DNS names, IPs) clients use for the API server: in-cluster (the `kubernetes`
    Service), the node's address, loopback."""
    dns = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
           f"kubernetes.default.svc.{cluster_domain}", host_name, "localhost")
    return dns, (api_addr, service_ip, "127.0.0.1")


def plan(api_addr: str, service_ip: str, cluster_domain: str, control_host: str,
         nodes: list[tuple[str, str]]) -> list[CertSpec]:
    """Every certificate of the cluster. `nodes`: (node name, address)."""
    dns, ips = apiserver_sans(api_addr, service_ip, cluster_domain, control_host)
    specs = [
        CertSpec("apiserver", "kube-apiserver", dns=dns, ips=ips, server=True),
        # The API server's client identity towards kubelets (logs, exec).
        CertSpec("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                 ("system:masters",), client=True),
        CertSpec("admin", "goship-lab-admin", ("system:masters",), client=True),
        CertSpec("controller-manager", "system:kube-controller-manager", client=True),
        CertSpec("scheduler", "system:kube-scheduler", client=True),
        CertSpec("kube-proxy", "system:kube-proxy", client=True),
        # The API server's identity when it forwards a request to metrics-server (the
        # aggregation layer): its requestheader-allowed-names accepts only this name.
        CertSpec("front-proxy-client", FRONT_PROXY_CN, client=True),
        # metrics-server: served to the API server at the control host's address, and its
        # client identity towards the API server and the kubelets (RBAC binds this user).
        CertSpec("metrics-server", METRICS_SERVER_USER,
                 dns=(f"metrics-server.kube-system.svc.{cluster_domain}",
                      "metrics-server.kube-system.svc"),
                 ips=(api_addr,), server=True, client=True),
    ]
    for node, addr in nodes:
        # The Node authorizer and NodeRestriction know a kubelet by this name and group.
        specs.append(CertSpec(f"kubelet-{node}", f"system:node:{node}", ("system:nodes",),
                              client=True))
        specs.append(CertSpec(f"kubelet-{node}-serving", node, dns=(node,), ips=(addr,),
                              server=True))
    return specs


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def issue(specs: list[CertSpec], now: datetime.datetime | None = None) -> Pki:
    now = now or datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("goship-lab-ca")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(
              digital_signature=True, key_cert_sign=True, crl_sign=True,
              content_commitment=False, key_encipherment=False, data_encipherment=False,
              key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    pki = Pki({"ca.crt": _cert_pem(ca), "ca.key": _key_pem(ca_key)})
    for spec in specs:
        key = ec.generate_private_key(ec.SECP256R1())
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if spec.server else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if spec.client else [])
        builder = (x509.CertificateBuilder()
                   .subject_name(_name(spec.common_name, spec.organizations))
                   .issuer_name(ca_name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.KeyUsage(
                       digital_signature=True, key_encipherment=False, key_cert_sign=False,
                       crl_sign=False, content_commitment=False, data_encipherment=False,
                       key_agreement=False, encipher_only=False, decipher_only=False),
                       critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       ca_key.public_key()), critical=False))
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in spec.dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in spec.ips]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        pki.files[f"{spec.name}.crt"] = _cert_pem(cert)
        pki.files[f"{spec.name}.key"] = _key_pem(key)
    sa = ec.generate_private_key(ec.SECP256R1())
    pki.files["sa.key"] = _key_pem(sa)
    pki.files["sa.pub"] = sa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pki
