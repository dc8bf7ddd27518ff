"""A lab component built from a small wrapper module (go.mod + go.sum pinning it) and cached
under ~/.cache/goship/<name>/<version>/, keyed by the wrapper's hash: only the first lab
that needs it pays the build. Consul and metrics-server are built this way; Kubernetes,
a multi-call binary with its own main, in kube_build."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from goship.errors import LabError, PrerequisiteError
from goship.lab.kube_build import go_tool, hash_sources, tool_cache
from goship.lab.layout import HostLayout

SOURCES = ("go.mod", "go.sum")
# Each lab host mounts its own tmpfs there: the machine's files below them are hidden.
HOST_TMPFS = ("/tmp/", "/run/")  # noqa: S108


@dataclass(frozen=True)
class GoTool:
    name: str  # the binary's name and its cache directory
    version: str
    src: Path  # the wrapper module
    package: str  # what `go build` builds, from the wrapper module
    ldflags: str
    cache_env: str  # overrides the cache root
    # Modules the checksum database does not know (go.sum pins them; this only matters
    # when go.sum is regenerated).
    nosumdb: str = ""

    @property
    def dir(self) -> Path:
        return tool_cache(self.name, self.cache_env) / self.version

    @property
    def path(self) -> Path:
        return self.dir / self.name

    @property
    def stamp(self) -> Path:
        return self.dir / "sources.sha256"

    def sources_hash(self) -> str:
        return hash_sources(self.src, SOURCES)

    def is_cached(self) -> bool:
        return (self.path.is_file() and self.stamp.is_file()
                and self.stamp.read_text().strip() == self.sources_hash())

    def build_env(self) -> dict[str, str]:
        nosum = ",".join(x for x in (os.environ.get("GONOSUMDB", ""), self.nosumdb) if x)
        return {**os.environ, "CGO_ENABLED": "0", "GONOSUMDB": nosum,
                "GOFLAGS": "-mod=readonly -buildvcs=false"}


def ensure(tool: GoTool, progress: Callable[[str], None] = lambda _m: None) -> GoTool:
    """The cached binary, built first if missing or stale (minutes from an empty Go cache;
    `progress` hears what happens)."""
    if tool.is_cached():
        return tool
    go = go_tool()
    tool.dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    progress(f"building {tool.name} {tool.version}; minutes from an empty Go cache")
    partial = tool.path.with_name(tool.name + ".partial")
    res = subprocess.run([go, "build", "-trimpath", "-ldflags", tool.ldflags,
                          "-o", str(partial), tool.package], cwd=tool.src,
                         env=tool.build_env(), capture_output=True, text=True, timeout=3600,
                         check=False)
    if res.returncode != 0:
        tail = " | ".join(res.stderr.strip().splitlines()[-5:])
        raise LabError(f"building {tool.name} failed: {tail}",
                       hint="`go` needs the module proxy (GOPROXY) or a filled module cache")
    partial.replace(tool.path)
    tool.stamp.write_text(tool.sources_hash() + "\n")
    progress(f"built in {time.monotonic() - started:.0f}s into {tool.dir}")
    return tool


def host_path(h: HostLayout, binary: Path, subdir: str) -> str:
    """A cached binary as lab host h sees it: hosts boot from an overlay of this machine's
    root, so a cache on its disk is already there; elsewhere (a tmpfs) it is copied in,
    to /usr/local/lib/SUBDIR."""
    path = str(binary)
    if (h.root / path.lstrip("/")).is_file() and not path.startswith(HOST_TMPFS):
        return path
    local = h.root / "usr" / "local" / "lib" / subdir
    local.mkdir(parents=True, exist_ok=True)
    if not (local / binary.name).exists():
        shutil.copy2(binary, local / binary.name)
    return f"/usr/local/lib/{subdir}/{binary.name}"


def main(tool: GoTool) -> int:
    """scripts/<tool>.sh: build into the cache unless it is there already."""
    try:
        ensure(tool, progress=lambda m: print(f"{tool.name}: {m}", flush=True))
    except (LabError, PrerequisiteError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{tool.name}: {tool.version} in {tool.path}")
    return 0
