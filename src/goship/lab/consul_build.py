"""The lab's Consul binary, built from the Go module proxy and cached.

Consul is not in Debian, and github.com/hashicorp/consul cannot be `go install`ed: its
go.mod replaces its api, sdk, proto-public, envoyextensions and troubleshoot submodules
with local paths. consul_src/ is a small module that requires it as a tool and replaces
each submodule by the published version Consul itself requires. The result is cached
under ~/.cache/goship/consul/<version>/, keyed by the sources' hash, so only the first
`lab up --consul` (or scripts/consul.sh) pays the build."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from goship.errors import LabError, PrerequisiteError
from goship.lab.kube_build import go_tool, hash_sources, tool_cache

CONSUL_VERSION = "v1.20.6"
# What `consul version` reports besides the version (embedded from Consul's VERSION file):
# the release's commit date from the module proxy, as Consul's Makefile stamps BuildDate.
BUILD_DATE = "2025-04-28T04:06:42Z"
SRC = Path(__file__).with_name("consul_src")
SOURCES = ("go.mod", "go.sum")
PACKAGE = "github.com/hashicorp/consul"
# consul-awsauth is required at a pseudo-version the checksum database does not know;
# go.sum pins it, so this only matters when go.sum is regenerated.
NOSUMDB = "github.com/hashicorp/consul-awsauth"


@dataclass(frozen=True)
class Binary:
    dir: Path

    @property
    def path(self) -> Path:
        return self.dir / "consul"

    @property
    def stamp(self) -> Path:
        return self.dir / "sources.sha256"


def cache_root() -> Path:
    """GOSHIP_CONSUL_CACHE, else $XDG_CACHE_HOME (or ~/.cache)/goship/consul."""
    return tool_cache("consul", "GOSHIP_CONSUL_CACHE")


def sources_hash(src: Path = SRC) -> str:
    return hash_sources(src, SOURCES)


def binary(version: str = CONSUL_VERSION) -> Binary:
    return Binary(cache_root() / version)


def is_cached(b: Binary) -> bool:
    return (b.path.is_file() and b.stamp.is_file()
            and b.stamp.read_text().strip() == sources_hash())


def ldflags(version: str = CONSUL_VERSION) -> str:
    """-s -w, and what Consul's Makefile stamps (GOLDFLAGS): GitCommit and BuildDate."""
    pkg = f"{PACKAGE}/version"
    return f"-s -w -X {pkg}.GitCommit={version} -X {pkg}.BuildDate={BUILD_DATE}"


def build_env() -> dict[str, str]:
    nosum = ",".join(x for x in (os.environ.get("GONOSUMDB", ""), NOSUMDB) if x)
    return {**os.environ, "CGO_ENABLED": "0", "GONOSUMDB": nosum,
            "GOFLAGS": "-mod=readonly -buildvcs=false"}


def ensure(progress: Callable[[str], None] = lambda _m: None,
           version: str = CONSUL_VERSION) -> Binary:
    """The cached binary, built first if missing or stale (minutes from an empty Go cache;
    `progress` hears what happens)."""
    b = binary(version)
    if is_cached(b):
        return b
    go = go_tool()
    b.dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    progress(f"building Consul {version}; minutes from an empty Go cache")
    partial = b.path.with_name("consul.partial")
    res = subprocess.run([go, "build", "-trimpath", "-ldflags", ldflags(version),
                          "-o", str(partial), PACKAGE], cwd=SRC, env=build_env(),
                         capture_output=True, text=True, timeout=3600, check=False)
    if res.returncode != 0:
        tail = " | ".join(res.stderr.strip().splitlines()[-5:])
        raise LabError(f"building Consul failed: {tail}",
                       hint="`go` needs the module proxy (GOPROXY) or a filled module cache")
    partial.replace(b.path)
    b.stamp.write_text(sources_hash() + "\n")
    progress(f"built in {time.monotonic() - started:.0f}s into {b.dir}")
    return b


def main() -> int:
    """scripts/consul.sh: build into the cache unless it is there already."""
    try:
        b = ensure(progress=lambda m: print(f"consul: {m}", flush=True))
    except (LabError, PrerequisiteError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"consul: {CONSUL_VERSION} in {b.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
