"""The shape of goship.toml. Every section refuses unknown keys; types are strict (TOML
has types, so "2" is not 2). Defaults are documented in docs/config.md."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

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

HEALTH_PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")
BUILD_TAG = re.compile(r"^[A-Za-z0-9_.]+$")
PERCENT = re.compile(r"^([1-9][0-9]?|100)%$")


def _health_path(value: str) -> str:
    if not HEALTH_PATH.match(value):
        raise ValueError(f"expected a URL path like /health, found {value!r}")
    return value


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


def _batch(value: int | str) -> int | str:
    ok = value >= 1 if isinstance(value, int) else bool(PERCENT.match(value))
    if not ok:
        raise ValueError(f"expected a host count >= 1 or a percentage like '25%', "
                         f"found {value!r}")
    return value


def _version(value: str) -> str:
    if value != "git":
        v.stamp_value(value)
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


class Build(Section):
    targets: list[Target] = Field(default_factory=lambda: ["linux/amd64"], min_length=1)
    tags: list[Annotated[str, AfterValidator(_build_tag)]] = Field(default_factory=list)
    cgo: bool = False
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


class Run(Section):
    port_env: EnvVar = "PORT"
    base_port: int = Field(default=8080, ge=1024, le=64000)
    instances: int = Field(default=1, ge=1, le=64)
    user: UserName | None = None
    env: dict[EnvVar, str] = Field(default_factory=dict)
    env_file: RelPath | None = None
    drain_timeout: float = Field(default=10.0, gt=0, le=600)
    manager: Literal["auto", "systemd", "supervisord", "docker"] = "auto"
    limit_nofile: int = Field(default=65536, ge=1024, le=1048576)
    health: Health = Field(default_factory=Health)


class Tls(Section):
    mode: Literal["off", "letsencrypt", "files"] = "off"
    email: str | None = None
    cert: AbsPath | None = None
    key: AbsPath | None = None
    hsts: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Tls:
        if self.mode == "files" and not (self.cert and self.key):
            raise ValueError("mode = 'files' needs cert and key (absolute paths on the hosts)")
        if self.mode == "letsencrypt" and not self.email:
            raise ValueError("mode = 'letsencrypt' needs email (for expiry notices)")
        return self


class Proxy(Section):
    server_names: list[ServerName] = Field(default_factory=list)
    listen: int = Field(default=80, ge=1, le=65535)
    balance: Literal["least_conn", "round_robin", "ip_hash", "random"] = "least_conn"
    client_max_body_size: Size = "10m"
    trusted_proxies: list[Annotated[str, AfterValidator(_cidr)]] = Field(default_factory=list)
    rate_limit: int | None = Field(default=None, ge=1, le=100000)
    switch: Literal["auto", "lua", "reload"] = "auto"
    tls: Tls = Field(default_factory=Tls)


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
    hooks: Hooks = Field(default_factory=Hooks)


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


class Config(Section):
    """Everything but the environments: the base that each `[env.NAME]` overrides."""

    app: App
    build: Build = Field(default_factory=Build)
    run: Run = Field(default_factory=Run)
    proxy: Proxy = Field(default_factory=Proxy)
    deploy: Deploy = Field(default_factory=Deploy)
    canary: Canary = Field(default_factory=Canary)

    @property
    def service_user(self) -> str:
        return self.run.user or self.app.name


SECTIONS = ("app", "build", "run", "proxy", "deploy", "canary")


class Target_(Section):
    """Where an environment deploys: exactly one of hosts, local, lab."""

    hosts: list[HostSpec] | None = Field(default=None, min_length=1)
    local: bool = False
    lab: int | None = Field(default=None, ge=1, le=20)
    sudo: bool | None = None
    identity_file: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Target_:
        chosen = [k for k, on in (("hosts", self.hosts), ("local", self.local),
                                  ("lab", self.lab)) if on]
        if len(chosen) != 1:
            found = ", ".join(chosen) if chosen else "none of them"
            raise ValueError(f"expected exactly one of hosts, local = true, lab = N; "
                             f"found {found}")
        return self

    @property
    def kind(self) -> Literal["hosts", "local", "lab"]:
        if self.hosts:
            return "hosts"
        return "local" if self.local else "lab"


TARGET_KEYS = tuple(Target_.model_fields)
