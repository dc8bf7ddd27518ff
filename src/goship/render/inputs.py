"""What every renderer gets: the config, the project, the environment's hosts, the version
and the secrets (which only reach output with --show-secrets)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from goship.config import Config, Environment
from goship.config.load import is_secret_name
from goship.config.show import has_url_password
from goship.errors import ConfigError
from goship.render.context import Paths

SECRET_MASK = "REDACTED"  # noqa: S105 (the mask, not a secret)


@dataclass(frozen=True)
class RenderInput:
    config: Config
    root: Path
    env: str | None = None
    hosts: list[str] = field(default_factory=list)  # addresses, empty without --env
    version: str = "RELEASE"
    secrets: dict[str, str] = field(default_factory=dict)
    show_secrets: bool = False
    secret_name: str | None = None  # the Kubernetes Secret's, when deploy chose one
    # The registry login as a dockerconfigjson, when deploy applies the pull Secret (a
    # plain render references that Secret and never holds the password).
    registry_auth: str | None = None

    @property
    def paths(self) -> Paths:
        return Paths(self.config.deploy.base_path, self.config.app.name)

    @property
    def app(self) -> str:
        return self.config.app.name

    def public_env(self) -> dict[str, str]:
        """run.env without its secrets: what may go into an image, a ConfigMap or a
        script."""
        return public_env(self.config)

    def secret_env(self) -> dict[str, str]:
        """Every secret: run.env's (by name, or a URL with a password), then the env
        file's (which wins, as on a host)."""
        named = {k: v for k, v in self.config.run.env.items() if _secret(k, v)}
        return {**named, **self.secrets}

    def secret_values(self) -> dict[str, str]:
        """The secrets, or a mask for each: never printed by default."""
        if self.show_secrets:
            return self.secret_env()
        return dict.fromkeys(self.secret_env(), SECRET_MASK)


def public_env(config: Config) -> dict[str, str]:
    return {k: v for k, v in config.run.env.items() if not _secret(k, v)}


def _secret(name: str, value: str) -> bool:
    return is_secret_name(name) or has_url_password(value)


def host_addresses(env: Environment) -> list[str]:
    from goship.targets import addresses

    return addresses(env)


def project_version(root: Path, config: Config) -> str:
    """The version a build here would be stamped with; RELEASE when git cannot tell."""
    if config.app.version != "git":
        return config.app.version
    from goship.build.gitinfo import derive
    from goship.errors import UsageError

    try:
        return derive(root, "git", allow_dirty=True).safe_version
    except UsageError:  # not a git checkout: the placeholder is the honest answer
        return "RELEASE"


GO_LINE = re.compile(r"^(?:toolchain go|go )([0-9]+\.[0-9]+(?:\.[0-9]+)?)\s*$", re.M)


def go_version(root: Path, config: Config) -> str:
    """The Go version go.mod asks for (its toolchain line first): builders pin to it."""
    if config.ci.go_version:
        return config.ci.go_version
    gomod = root / config.app.module_dir / "go.mod"
    try:
        found = GO_LINE.findall(gomod.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(str(gomod), "", "not UTF-8 text",
                          hint="go.mod is UTF-8; save it as such") from None
    except OSError:  # no go.mod (yet): the default Go version
        found = []
    toolchain = [str(v) for v in found if v.count(".") == 2]
    return str((toolchain or found or ["1.22"])[-1])
