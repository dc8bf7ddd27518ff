"""The shape of goship.toml. Every section refuses unknown keys; types are strict (TOML
has types, so "2" is not 2). Defaults are documented in docs/config.md."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from goship.canary.redis_state import validate_url as validate_redis_url
from goship.config import validators as v

AppName = Annotated[str, AfterValidator(v.app_name)]
UserName = Annotated[str, AfterValidator(v.user_name)]
EnvVar = Annotated[str, AfterValidator(v.env_var)]
RelPath = Annotated[str, AfterValidator(v.relative_path)]
AbsPath = Annotated[str, AfterValidator(v.absolute_path)]
HostSpec = Annotated[str, AfterValidator(v.host_spec)]
ServerName = Annotated[str, AfterValidator(v.server_name)]
StampVar = Annotated[str, AfterValidator(v.stamp_var)]
StampValue = Annotated[str, AfterValidator(v.stamp_value)]
Target = Annotated[str, AfterValidator(v.target)]
Size = Annotated[str, AfterValidator(v.size)]
UrlPath = Annotated[str, AfterValidator(v.url_path)]
Duration = Annotated[str, AfterValidator(v.duration)]
Quantity = Annotated[str, AfterValidator(v.quantity)]
LabelValue = Annotated[str, AfterValidator(v.label_value)]

HEALTH_PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")
BUILD_TAG = re.compile(r"^[A-Za-z0-9_.]+$")
PERCENT = re.compile(r"^([1-9][0-9]?|100)%$")


def _health_path(value: str) -> str:
    if not HEALTH_PATH.match(value):
        raise ValueError(f"expected a URL path like /health, found {value!r}")
    return value


def _env_value(value: str) -> str:
    # TOML allows "\u0000"; no environment (execve, systemd, a shell) can carry it.
    if "\x00" in value:
        raise ValueError("a NUL byte cannot be in an environment value")
    return value


EnvValue = Annotated[str, AfterValidator(_env_value)]


def _build_tag(value: str) -> str:
    if not BUILD_TAG.match(value):
        raise ValueError(f"expected a Go build tag (letters, digits, _ and .), found {value!r}")
    return value


HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def _header(value: str) -> str:
    if not HEADER.match(value):
        raise ValueError(f"expected an HTTP header name like X-User-Id, found {value!r}")
    return value


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"expected an address or CIDR like 10.0.0.0/8, found {value!r}") from None
    return value


def _ip(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"expected an IP address like 10.0.0.2, found {value!r}") from None
    return value


def _batch(value: int | str) -> int | str:
    ok = value >= 1 if isinstance(value, int) else bool(PERCENT.match(value))
    if not ok:
        raise ValueError(f"expected a count >= 1 or a percentage like '25%', "
                         f"found {value!r}")
    return value


def _version(value: str) -> str:
    if value != "git":
        v.stamp_value(value)
    return value


def _one_line(value: str) -> str:
    if "\x00" in value or "\n" in value or "\r" in value:
        raise ValueError("must be one line without NUL characters")
    return value


def _placeholders(value: str) -> str:
    from goship.deploy.runfiles import check_placeholders

    return check_placeholders(value)


def _process_name(value: str) -> str:
    from goship.config.schedule import process_name

    return process_name(value)


def _calendar(value: str) -> str:
    from goship.config.schedule import calendar

    return calendar(value)


def _not_root(value: str) -> str:
    if value.strip("/") in ("", "."):
        raise ValueError("a data directory must be a directory inside the release, like data")
    return value


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class App(Section):
    name: AppName
    module_dir: RelPath = "."
    main: RelPath = "."
    binary: AppName | None = None
    version: Annotated[str, AfterValidator(_version)] = "git"
    stamp: dict[StampVar, StampValue] = Field(default_factory=dict)

    @property
    def binary_name(self) -> str:
        return self.binary or self.name


STEP_MAX = 4096
CC_COMMAND = re.compile(r"^[A-Za-z0-9_./+=:,@-]+( [A-Za-z0-9_./+=:,@-]+)*$")


def _before_step(value: str) -> str:
    if not value.strip():
        raise ValueError("expected a shell command, found an empty string")
    if "\0" in value or "\n" in value or "\r" in value:
        raise ValueError(f"expected one command on one line (join steps with && or list "
                         f"them separately), found {value[:40]!r}")
    if len(value) > STEP_MAX:
        raise ValueError(f"expected a command under {STEP_MAX} characters")
    return value


def _cc_command(value: str) -> str:
    if not CC_COMMAND.match(value):
        raise ValueError(f'expected a C compiler command like "aarch64-linux-gnu-gcc" or '
                         f'"zig" (letters, digits, ._/+=:,@- and single spaces), found '
                         f"{value!r}")
    return value


class Build(Section):
    targets: list[Target] = Field(default_factory=lambda: ["linux/amd64"], min_length=1)
    tags: list[Annotated[str, AfterValidator(_build_tag)]] = Field(default_factory=list)
    cgo: bool = False
    # The C compiler per target for cgo builds; "zig" means `zig cc -target <triple>`.
    cc: dict[Target, Annotated[str, AfterValidator(_cc_command)]] = Field(
        default_factory=dict)
    # Commands run in the project directory (sh -c) before `go build`.
    before: list[Annotated[str, AfterValidator(_before_step)]] = Field(default_factory=list)
    upx: bool = False
    assets: list[RelPath] = Field(default_factory=list)
    files: list[RelPath] = Field(default_factory=list)
    out_dir: RelPath = "dist"


class Health(Section):
    path: Annotated[str, AfterValidator(_health_path)] = "/health"
    timeout: float = Field(default=2.0, gt=0, le=60)
    interval: float = Field(default=0.5, gt=0, le=60)
    deadline: float = Field(default=30.0, gt=0, le=3600)
    successes: int = Field(default=3, ge=1, le=100)
    # [processes.*] workers: live once running this long without a restart.
    min_uptime: float = Field(default=5.0, gt=0, le=600)


class ColorPorts(Section):
    """Explicit ports per color, honoured strictly: a port held by another process stops
    the deploy before anything changes."""

    blue: list[Annotated[int, Field(ge=1024, le=65535)]] = Field(min_length=1, max_length=64)
    green: list[Annotated[int, Field(ge=1024, le=65535)]] = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def _distinct(self) -> ColorPorts:
        if len(self.blue) != len(self.green):
            raise ValueError(f"blue has {len(self.blue)} port(s) and green {len(self.green)}: "
                             f"each color runs the same number of instances")
        every = [*self.blue, *self.green]
        if len(set(every)) != len(every):
            raise ValueError("a port appears twice: the colors must never share a port")
        return self


class Run(Section):
    port_env: EnvVar = "PORT"
    base_port: int = Field(default=8080, ge=1024, le=64000)
    instances: int = Field(default=1, ge=1, le=64)
    user: UserName | None = None
    env: dict[EnvVar, EnvValue] = Field(default_factory=dict)
    env_file: RelPath | None = None
    drain_timeout: float = Field(default=10.0, gt=0, le=600)
    # Seconds an old color that served keeps running while clients (websockets, SSE) still
    # hold connections to it, before it is stopped; 0: stopped without waiting.
    drain_timeout_long: float = Field(default=300.0, ge=0, le=86400)
    manager: Literal["auto", "systemd", "supervisord", "docker"] = "auto"
    limit_nofile: int = Field(default=65536, ge=1024, le=1048576)
    health: Health = Field(default_factory=Health)
    ports: ColorPorts | None = None
    # Arguments of the binary, never through a shell; {port}, {color}, {release}, {data}
    # expand.
    args: list[Annotated[str, AfterValidator(_one_line), AfterValidator(_placeholders)]] = \
        Field(default_factory=list)
    data_dirs: list[Annotated[str, AfterValidator(v.relative_path),
                              AfterValidator(_not_root)]] = Field(default_factory=list)
    config_files: list[RelPath] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ports_count(self) -> Run:
        if self.ports is not None and len(self.ports.blue) != self.instances \
                and "instances" in self.model_fields_set:
            raise ValueError(f"instances = {self.instances} but ports lists "
                             f"{len(self.ports.blue)} per color: drop instances (the ports "
                             f"decide) or make them agree")
        return self

    @property
    def instance_count(self) -> int:
        return len(self.ports.blue) if self.ports is not None else self.instances


class Tls(Section):
    mode: Literal["off", "letsencrypt", "files"] = "off"
    email: Annotated[str, AfterValidator(v.email)] | None = None
    cert: AbsPath | None = None
    key: AbsPath | None = None
    hsts: bool = True
    listen: int = Field(default=443, ge=1, le=65535)
    stapling: bool = True
    chain: AbsPath | None = None
    resolvers: list[Annotated[str, AfterValidator(_ip)]] = Field(
        default_factory=lambda: ["1.1.1.1", "9.9.9.9"])
    webroot: AbsPath = "/var/www/goship-acme"

    @model_validator(mode="after")
    def _consistent(self) -> Tls:
        if self.mode == "files" and not (self.cert and self.key):
            raise ValueError("mode = 'files' needs cert and key (absolute paths on the hosts)")
        if self.mode == "letsencrypt" and not self.email:
            raise ValueError("mode = 'letsencrypt' needs email (for expiry notices)")
        return self


class Static(Section):
    """A URL prefix nginx serves from a directory of the live release."""

    url: UrlPath
    dir: RelPath
    expires: Duration = "7d"

    @model_validator(mode="after")
    def _prefix(self) -> Static:
        if not self.url.endswith("/"):
            raise ValueError(f"url must end with '/' (a prefix like /static/), "
                             f"found {self.url!r}")
        return self


class Lb(Section):
    """The load-balancer role: one nginx spreading across the environment's hosts."""

    listen: int = Field(default=80, ge=1, le=65535)
    server_names: list[ServerName] = Field(default_factory=list)
    balance: Literal["least_conn", "round_robin", "ip_hash", "random"] = "least_conn"
    weights: dict[str, Annotated[int, Field(ge=1, le=100)]] = Field(default_factory=dict)
    max_fails: int = Field(default=3, ge=0, le=100)
    fail_timeout: Duration = "10s"
    # "static": the environment's hosts (their nginx on proxy.listen). "consul": the passing
    # instances of the app as the Consul agent at `consul` answers, read by Lua (docs/consul.md).
    discovery: Literal["static", "consul"] = "static"
    consul: Annotated[str, AfterValidator(v.host_port)] = "127.0.0.1:8500"
    # Where goship installs the balancer (`goship setup` and `deploy`): hosts written like
    # the environment's (a lab environment's: h1..h20). Empty: render only.
    hosts: list[HostSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consul_shape(self) -> Lb:
        if self.discovery == "consul" and self.weights:
            raise ValueError('weights name static hosts; with discovery = "consul" every '
                             'passing instance counts once: drop weights')
        if len(set(self.hosts)) != len(self.hosts):
            raise ValueError("hosts lists a host twice")
        return self


PATH_PREFIX = re.compile(r"^(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+$")


def _path_prefix(value: str) -> str:
    # Rendered into nginx locations and a rewrite regex: plain segments only.
    if not PATH_PREFIX.match(value) or any(s in (".", "..") or s.startswith(".")
                                           for s in value.split("/")[1:]):
        raise ValueError(f"expected a URL path prefix like /api (segments of letters, "
                         f"digits, _~-, no trailing '/', no '.' or '..'), found {value!r}")
    return value


class Proxy(Section):
    server_names: list[ServerName] = Field(default_factory=list)
    # Several apps on one host (docs/deploy.md#several-apps-on-one-host): this app is served
    # only under the prefix; strip_path removes it before the request reaches the app.
    path: Annotated[str, AfterValidator(_path_prefix)] | None = None
    strip_path: bool = False
    listen: int = Field(default=80, ge=1, le=65535)
    balance: Literal["least_conn", "round_robin", "ip_hash", "random"] = "least_conn"
    client_max_body_size: Size = "10m"
    trusted_proxies: list[Annotated[str, AfterValidator(_cidr)]] = Field(default_factory=list)
    rate_limit: int | None = Field(default=None, ge=1, le=100000)
    switch: Literal["auto", "lua", "reload"] = "auto"
    static: list[Static] = Field(default_factory=list)
    stream_paths: list[UrlPath] = Field(default_factory=list)
    tls: Tls = Field(default_factory=Tls)
    lb: Lb = Field(default_factory=Lb)

    @model_validator(mode="after")
    def _tls_names(self) -> Proxy:
        if self.tls.mode == "letsencrypt" and not self.server_names:
            raise ValueError("tls.mode = 'letsencrypt' needs server_names (the certificate's "
                             "names)")
        odd = [n for n in self.server_names if "*" in n or n == "_"]
        if self.tls.mode == "letsencrypt" and odd:
            raise ValueError(f"tls.mode = 'letsencrypt' cannot prove {odd[0]!r} over HTTP "
                             f"(wildcards need a DNS challenge): list exact names, or use "
                             f"mode = 'files' with your own certificate")
        if self.tls.mode != "off" and self.tls.listen == self.listen:
            raise ValueError(f"tls.listen and listen are both {self.listen}: HTTPS needs its "
                             f"own port")
        if self.path is not None:
            if self.tls.mode != "off":
                raise ValueError("path cannot be combined with tls yet: serve the path app "
                                 "over plain HTTP behind the TLS app, or give it server_names")
            if self.static:
                raise ValueError("path cannot be combined with static yet: let the app "
                                 "serve its files under the prefix")
            outside = [sp for sp in self.stream_paths
                       if sp != self.path and not sp.startswith(self.path + "/")]
            if outside:
                raise ValueError(f"stream_paths {outside[0]!r} is outside path "
                                 f"{self.path!r}: list paths under the prefix")
        elif self.strip_path:
            raise ValueError("strip_path needs path (the prefix to strip)")
        return self


class Hooks(Section):
    pre_deploy: list[str] = Field(default_factory=list)
    post_deploy: list[str] = Field(default_factory=list)
    pre_deploy_remote: list[str] = Field(default_factory=list)
    post_deploy_remote: list[str] = Field(default_factory=list)


class Deploy(Section):
    strategy: Literal["bluegreen", "rolling", "canary"] = "bluegreen"
    batch: Annotated[int | str, AfterValidator(_batch)] = 1
    max_failures: int = Field(default=0, ge=0)
    keep_releases: int = Field(default=5, ge=2, le=100)
    base_path: AbsPath = "/srv"
    concurrency: int = Field(default=20, ge=1, le=200)
    on_unreachable: Literal["abort", "skip"] = "abort"
    lock_ttl: float = Field(default=120.0, ge=10, le=86400)
    # Seconds the old color keeps running, unserved, after a switch: a rollback inside the
    # window is one health answer and a switch. 0: stop it at once.
    rollback_window: float = Field(default=600.0, ge=0, le=7 * 86400)
    hooks: Hooks = Field(default_factory=Hooks)
    # Run once per deploy (a migration), by `sh -c` on one host, before any host starts the
    # new release (docs/deploy.md#release-command).
    release_command: Annotated[str, AfterValidator(_before_step)] | None = None
    release_host: Annotated[str, AfterValidator(_release_host)] | None = None
    release_command_timeout: float = Field(default=300.0, gt=0, le=86400)


RELEASE_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:\[\]-]{0,252}$")


def _release_host(value: str) -> str:
    # A name of the environment's hosts (checked against them when the file loads).
    if not RELEASE_HOST.match(value):
        raise ValueError(f"expected a host of the environment like h1 or deploy@app1, "
                         f"found {value!r}")
    return value


def _steps(value: list[float]) -> list[float]:
    if not value or any(not 0 < w <= 100 for w in value) or value != sorted(value):
        raise ValueError(f"expected rising weights in (0, 100], e.g. [5, 25, 50, 100], "
                         f"found {value!r}")
    return value


class Canary(Section):
    steps: Annotated[list[float], AfterValidator(_steps)] = Field(
        default_factory=lambda: [5.0, 25.0, 50.0, 100.0])
    step_min_requests: int = Field(default=200, ge=1)
    step_min_seconds: float = Field(default=30.0, ge=0)
    step_timeout: float = Field(default=300.0, gt=0)
    max_error_rate: float = Field(default=0.01, gt=0, le=1)
    error_delta: float = Field(default=0.005, ge=0, le=1)
    p99_cap_ms: float = Field(default=800.0, gt=0)
    latency_ratio: float = Field(default=1.2, ge=1)
    latency_floor_ms: float = Field(default=20.0, ge=0)
    guard_interval: float = Field(default=2.0, gt=0, le=60)
    id_cookie: Annotated[str, AfterValidator(v.env_var)] | None = None
    id_header: Annotated[str, AfterValidator(_header)] | None = None
    # Where the routing lives: "push" (each host's nginx through its control socket) or
    # "redis" (one Redis hash every host's nginx polls; docs/canary.md).
    state: Literal["push", "redis"] = "push"
    redis: Annotated[str, AfterValidator(validate_redis_url)] | None = None
    # The Redis password from run.env / run.env_file instead of the URL.
    redis_password_var: EnvVar | None = None

    @model_validator(mode="after")
    def _redis_needs_url(self) -> Canary:
        if self.state == "redis" and not self.redis:
            raise ValueError('canary.state = "redis" needs canary.redis = '
                             '"redis://host:6379/0"')
        return self


ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")
ULIMIT = re.compile(r"^-?[0-9]+(:-?[0-9]+)?$")


def _ulimits(value: dict[str, str]) -> dict[str, str]:
    for name, limit in value.items():
        if name not in ULIMIT_NAMES:
            raise ValueError(f"unknown ulimit {name!r}; expected one of "
                             f"{', '.join(ULIMIT_NAMES)}")
        if not ULIMIT.match(limit):
            raise ValueError(f"ulimit {name} = {limit!r}: expected SOFT or SOFT:HARD, "
                             f"e.g. \"65536:65536\"")
    return value


REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?"
                      r"/[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$")


# What registries' user names hold: GCR's _json_key, e-mail addresses, Harbor's robot
# accounts (robot$project+name); every use passes it quoted (argv, stdin, JSON).
REGISTRY_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._@+$-]{0,254}$")


def _registry_user(value: str) -> str:
    if not REGISTRY_USER.match(value):
        raise ValueError("expected a registry user name (letters, digits and . _ @ + $ -), "
                         f"found {value!r}")
    return value


def _registry(value: str) -> str:
    if not REGISTRY.match(value):
        raise ValueError(f"expected host[:port]/repository like registry.example.com:5000/"
                         f"team/app, found {value!r}")
    return value


class Docker(Section):
    base: Literal["scratch", "distroless", "alpine"] = "scratch"
    go_image: Annotated[str, AfterValidator(v.image)] | None = None
    image: Annotated[str, AfterValidator(v.image)] | None = None
    # run.manager = "docker": limits and hardening of every container (docs/config.md).
    memory: Size | None = None
    cpus: float | None = Field(default=None, gt=0, le=1024)
    pids_limit: int | None = Field(default=None, ge=16, le=4194304)
    ulimits: Annotated[dict[str, str], AfterValidator(_ulimits)] = Field(default_factory=dict)
    restart: Literal["no", "on-failure", "always", "unless-stopped"] = "unless-stopped"
    restart_max: int | None = Field(default=None, ge=1, le=1000)
    read_only: bool = True
    tmpfs_size: Size = "64m"
    cap_drop_all: bool = True
    log_max_size: Size = "10m"
    # host[:port]/repository: goship pushes the image there (by digest), hosts pull it.
    registry: Annotated[str, AfterValidator(_registry)] | None = None
    registry_insecure: bool = False
    # A registry that needs a login: the user, and the name of the environment variable
    # holding its password (or token) in goship's own environment, never in goship.toml.
    registry_username: Annotated[str, AfterValidator(_registry_user)] | None = None
    registry_password_var: EnvVar | None = None

    @model_validator(mode="after")
    def _restart(self) -> Docker:
        if self.restart_max is not None and self.restart != "on-failure":
            raise ValueError("restart_max counts restarts of restart = \"on-failure\" only")
        return self

    @model_validator(mode="after")
    def _login(self) -> Docker:
        if (self.registry_username is None) != (self.registry_password_var is None):
            raise ValueError("registry_username and registry_password_var go together: the "
                             "user, and the environment variable holding its password")
        if self.registry_username is not None and not self.registry:
            raise ValueError("registry_username is for [docker] registry, which is not set")
        return self


class Kubernetes(Section):
    namespace: Annotated[str, AfterValidator(v.dns_label)] = "default"
    max_surge: Annotated[int | str, AfterValidator(_batch)] = "25%"
    max_unavailable: int = Field(default=0, ge=0)
    cpu_request: Quantity = "100m"
    memory_request: Quantity = "64Mi"
    cpu_limit: Quantity | None = None
    memory_limit: Quantity = "256Mi"
    min_replicas: int = Field(default=2, ge=1, le=1000)
    max_replicas: int = Field(default=10, ge=1, le=1000)
    cpu_target: int = Field(default=70, ge=1, le=100)
    # Seconds the autoscaler waits, after the load drops, before it removes pods (the
    # HPA's behavior.scaleDown.stabilizationWindowSeconds); none: Kubernetes' 300.
    scale_down_window: int | None = Field(default=None, ge=0, le=3600)
    min_available: int = Field(default=1, ge=0)
    ingress_class: Annotated[str, AfterValidator(v.dns_label)] = "nginx"
    pre_stop_seconds: int = Field(default=5, ge=0, le=120)
    istio: bool = False
    # The Service as a NodePort on every node (clusters without a load balancer or an
    # ingress controller, the lab's); none: a ClusterIP.
    node_port: int | None = Field(default=None, ge=30000, le=32767)
    # A PersistentVolumeClaim holding run.data_dirs and {data} for every pod (ReadWriteMany
    # for more than one node); none: an emptyDir, each pod's own, gone with the pod.
    data_claim: Annotated[str, AfterValidator(v.dns_label)] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Kubernetes:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) is below min_replicas "
                             f"({self.min_replicas})")
        return self


class Consul(Section):
    # Deploys register each instance with the host's local agent (docs/consul.md).
    enabled: bool = False
    agent: Annotated[str, AfterValidator(v.host_port)] = "127.0.0.1:8500"
    tags: list[LabelValue] = Field(default_factory=list)
    meta: dict[EnvVar, LabelValue] = Field(default_factory=dict)
    check_interval: Duration = "10s"
    check_timeout: Duration = "2s"
    deregister_after: Duration = "1m"
    # The name of a variable of run.env_file or [secrets] holding the ACL token: sent as
    # X-Consul-Token, never on a command line (docs/consul.md).
    token_env: EnvVar | None = None


class Metrics(Section):
    path: UrlPath = "/metrics"
    requests_metric: EnvVar = "http_requests_total"
    status_label: EnvVar = "code"
    duration_metric: EnvVar = "http_request_duration_seconds"
    error_ratio: float = Field(default=0.01, gt=0, le=1)
    p99_ms: float = Field(default=800.0, gt=0)
    memory_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    restarts: int = Field(default=3, ge=1)
    file_sd: RelPath | AbsPath | None = None


class Logs(Section):
    elasticsearch: list[Annotated[str, AfterValidator(v.url)]] = Field(
        default_factory=lambda: ["http://localhost:9200"])
    forward: Annotated[str, AfterValidator(v.host_port)] | None = None
    keep_days: int = Field(default=14, ge=1, le=3650)


class Ci(Section):
    go_version: Annotated[str, AfterValidator(v.label_value)] | None = None
    branch: Annotated[str, AfterValidator(v.label_value)] = "main"
    deploy_env: Annotated[str, AfterValidator(v.dns_label)] | None = None


class Windows(Section):
    service: AppName | None = None
    dir: Annotated[str, AfterValidator(v.windows_dir)] | None = None
    log_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    log_files: int = Field(default=8, ge=1, le=1000)


def _argv(value: str) -> str:
    import shlex

    try:
        argv = shlex.split(value)
    except ValueError as e:  # an unclosed quote
        raise ValueError(f"cannot be split into arguments ({e})") from None
    if not argv:
        raise ValueError("must name a command")
    return value


class Secret(Section):
    """`[secrets] NAME = { command = "pass show shop/db" }`: run on the deploying machine,
    as arguments (no shell unless written `sh -c`); its stdout is the value
    (docs/secrets.md)."""

    command: Annotated[str, AfterValidator(_one_line), AfterValidator(_argv)]
    timeout: float = Field(default=30.0, gt=0, le=600)


ProcessName = Annotated[str, AfterValidator(_process_name)]


class Process(Section):
    """`[processes.NAME]`: another main package of the module, built into the same release
    and run beside the web process: a worker (`instances`) or, with `schedule`, a systemd
    timer's oneshot job (docs/deploy.md#processes)."""

    main: RelPath
    instances: int = Field(default=1, ge=1, le=64)
    schedule: Annotated[str, AfterValidator(_calendar)] | None = None
    # false: the old release's instances stop before the new ones start (a singleton).
    overlap: bool = True
    args: list[Annotated[str, AfterValidator(_one_line), AfterValidator(_placeholders)]] = \
        Field(default_factory=list)
    env: dict[EnvVar, EnvValue] = Field(default_factory=dict)
    # Run on the host in the release directory, as the service user; exit 0: live (instead
    # of run.health.min_uptime alone).
    health_command: Annotated[str, AfterValidator(_before_step)] | None = None

    @model_validator(mode="after")
    def _timer_shape(self) -> Process:
        if self.schedule is not None and "instances" in self.model_fields_set \
                and self.instances != 1:
            raise ValueError("a scheduled process runs once per schedule: drop instances")
        if self.schedule is not None and self.health_command is not None:
            raise ValueError("a scheduled process has no liveness to gate: drop "
                             "health_command")
        return self


class Config(Section):
    """Everything but the environments: the base that each `[env.NAME]` overrides."""

    app: App
    build: Build = Field(default_factory=Build)
    run: Run = Field(default_factory=Run)
    proxy: Proxy = Field(default_factory=Proxy)
    deploy: Deploy = Field(default_factory=Deploy)
    canary: Canary = Field(default_factory=Canary)
    docker: Docker = Field(default_factory=Docker)
    kubernetes: Kubernetes = Field(default_factory=Kubernetes)
    consul: Consul = Field(default_factory=Consul)
    metrics: Metrics = Field(default_factory=Metrics)
    logs: Logs = Field(default_factory=Logs)
    ci: Ci = Field(default_factory=Ci)
    windows: Windows = Field(default_factory=Windows)
    secrets: dict[EnvVar, Secret] = Field(default_factory=dict)
    processes: dict[ProcessName, Process] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _process_binaries(self) -> Config:
        for name, proc in self.processes.items():
            if proc.main == self.app.main:
                raise ValueError(f"processes.{name}: main = {proc.main!r} is the web "
                                 f"process's (app.main); name another main package, like "
                                 f"cmd/{name}")
            if name == self.app.binary_name:
                raise ValueError(f"processes.{name}: the web binary is named {name}; name "
                                 f"the process otherwise")
        if self.processes and self.run.manager == "docker":
            raise ValueError('processes: run.manager = "docker" cannot run [processes.*] '
                             'yet: set run.manager = "systemd" or "supervisord"')
        timed = [n for n, p in self.processes.items() if p.schedule is not None]
        if timed and self.run.manager == "supervisord":
            raise ValueError(f'processes.{timed[0]}.schedule: run.manager = "supervisord" '
                             f"has no timers: set run.manager = \"systemd\", or drop the "
                             f"schedule and run the job from the host's cron (the binary "
                             f"ships as BASE/APP/current/{timed[0]})")
        mains = [p.main for p in self.processes.values()]
        if len(set(mains)) != len(mains):
            raise ValueError("two processes name the same main package; one process can "
                             "run several instances")
        return self

    @model_validator(mode="after")
    def _secret_names(self) -> Config:
        for name in self.secrets:
            if name in self.run.env:
                raise ValueError(f"secrets.{name}: {name} is also set in run.env; keep one")
            if name == self.run.port_env:
                raise ValueError(f"secrets.{name}: {name} is run.port_env, which goship "
                                 f"sets to each instance's port; name the secret otherwise")
        return self

    @model_validator(mode="after")
    def _shipped(self) -> Config:
        shipped = [*self.build.files, *self.build.assets]
        for f in self.run.config_files:
            if not any(f == s or f.startswith(s.rstrip("/") + "/") for s in shipped):
                raise ValueError(f"run.config_files: {f} is not shipped with the release; add "
                                 f"it to build.files")
        for d in self.run.data_dirs:
            if any(f.startswith(d.rstrip("/") + "/") for f in self.run.config_files):
                raise ValueError(f"run.data_dirs: {d} holds a file of run.config_files; a "
                                 f"config file ships with the release, data does not")
        return self

    @property
    def service_user(self) -> str:
        return self.run.user or self.app.name


SECTIONS = tuple(Config.model_fields)


def _plain_text(value: str) -> str:
    if not value or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("expected a non-empty value without control characters (newlines)")
    return value


PlainText = Annotated[str, AfterValidator(_plain_text)]


class KubeCluster(Section):
    """An environment's Kubernetes cluster: `kubernetes = "lab"` or a table naming a
    kubeconfig and its context (the namespace is `[kubernetes] namespace`)."""

    lab: bool = False  # the lab cluster (`goship lab kubeconfig`)
    kubeconfig: PlainText | None = None
    context: PlainText | None = None

    @model_validator(mode="after")
    def _one_cluster(self) -> KubeCluster:
        if self.lab and (self.kubeconfig or self.context):
            raise ValueError("lab = true is the lab's cluster: drop kubeconfig and context, "
                             "or drop lab")
        return self


class Target_(Section):
    """Where an environment deploys: exactly one of hosts, local, lab, kubernetes."""

    hosts: list[HostSpec] | None = Field(default=None, min_length=1)
    local: bool = False
    lab: int | None = Field(default=None, ge=1, le=20)
    kubernetes: KubeCluster | None = None
    sudo: bool | None = None
    identity_file: str | None = None

    @field_validator("kubernetes", mode="before")
    @classmethod
    def _cluster(cls, value: object) -> object:
        if isinstance(value, str):
            if value != "lab":
                raise ValueError(f'expected "lab" (the lab cluster) or a table '
                                 f'{{ kubeconfig = "...", context = "..." }}, found {value!r}')
            return {"lab": True}
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Target_:
        from goship.targets import REGISTRY, chosen

        picked = chosen(self)
        if len(picked) != 1:
            found = ", ".join(picked) if picked else "none of them"
            names = ", ".join({"local": "local = true", "lab": "lab = N",
                                "kubernetes": "kubernetes = ..."}.get(k, k)
                              for k in REGISTRY)
            raise ValueError(f"expected exactly one of {names}; found {found}")
        return self

    @property
    def kind(self) -> str:
        from goship.targets import chosen

        return chosen(self)[0]


TARGET_KEYS = tuple(Target_.model_fields)
