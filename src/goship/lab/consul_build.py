"""The lab's Consul binary, built from the Go module proxy and cached.

Consul is not in Debian, and github.com/hashicorp/consul cannot be `go install`ed: its
go.mod replaces its api, sdk, proto-public, envoyextensions and troubleshoot submodules
with local paths. consul_src/ is a small module that requires it as a tool and replaces
each submodule by the published version Consul itself requires. The result is cached
under ~/.cache/goship/consul/<version>/, keyed by the sources' hash, so only the first
`lab up --consul` (or scripts/consul.sh) pays the build."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from goship.lab import tool_build
from goship.lab.tool_build import GoTool

CONSUL_VERSION = "v1.20.6"
# What `consul version` reports besides the version (embedded from Consul's VERSION file):
# the release's commit date from the module proxy, as Consul's Makefile stamps BuildDate.
BUILD_DATE = "2025-04-28T04:06:42Z"
SRC = Path(__file__).with_name("consul_src")
PACKAGE = "github.com/hashicorp/consul"
# consul-awsauth is required at a pseudo-version the checksum database does not know.
NOSUMDB = "github.com/hashicorp/consul-awsauth"


def ldflags(version: str = CONSUL_VERSION) -> str:
    """-s -w, and what Consul's Makefile stamps (GOLDFLAGS): GitCommit and BuildDate."""
    pkg = f"{PACKAGE}/version"
    return f"-s -w -X {pkg}.GitCommit={version} -X {pkg}.BuildDate={BUILD_DATE}"


def tool(version: str = CONSUL_VERSION) -> GoTool:
    """The binary, cached under GOSHIP_CONSUL_CACHE, else ~/.cache/goship/consul."""
    return GoTool("consul", version, SRC, PACKAGE, ldflags(version), "GOSHIP_CONSUL_CACHE",
                  NOSUMDB)


def sources_hash() -> str:
    return tool().sources_hash()


def ensure(progress: Callable[[str], None] = lambda _m: None) -> GoTool:
    return tool_build.ensure(tool(), progress)


if __name__ == "__main__":
    sys.exit(tool_build.main(tool()))
