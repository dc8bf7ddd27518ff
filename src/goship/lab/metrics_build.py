"""The lab cluster's metrics-server (the HorizontalPodAutoscaler's CPU figures), built from
the Go module proxy and cached.

Nothing can pull its image here, so it runs as a systemd unit on the control host, as
the rest of the control plane does (kube_render.metrics_server_unit). metrics_src/ pins
sigs.k8s.io/metrics-server as a tool; the binary is cached under
~/.cache/goship/metrics-server/<version>/, keyed by the sources' hash."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from goship.lab import tool_build
from goship.lab.tool_build import GoTool

VERSION = "v0.8.0"
COMMIT = "d66279c6426c6581d9656fe3d42bc52db7c29597"  # the tag's commit (module proxy's .info)
BUILD_DATE = "2025-07-03T08:11:27Z"  # the same .info's time
SRC = Path(__file__).with_name("metrics_src")
PACKAGE = "sigs.k8s.io/metrics-server/cmd/metrics-server"
NOSUMDB = "sigs.k8s.io/metrics-server"  # the checksum database answers 404 for it here


def ldflags(version: str = VERSION) -> str:
    """-s -w, and what metrics-server's Makefile stamps (where /version reads it)."""
    pkg = "k8s.io/client-go/pkg/version"
    return (f"-s -w -X {pkg}.gitVersion={version} -X {pkg}.gitCommit={COMMIT} "
            f"-X {pkg}.buildDate={BUILD_DATE}")


def tool(version: str = VERSION) -> GoTool:
    """The binary, cached under GOSHIP_METRICS_CACHE, else ~/.cache/goship/metrics-server."""
    return GoTool("metrics-server", version, SRC, PACKAGE, ldflags(version),
                  "GOSHIP_METRICS_CACHE", NOSUMDB)


def ensure(progress: Callable[[str], None] = lambda _m: None) -> GoTool:
    return tool_build.ensure(tool(), progress)


if __name__ == "__main__":
    sys.exit(tool_build.main(tool()))
