"""The lab cluster's Kubernetes binaries, built from the Go module proxy and cached.

k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces its staging modules with
local paths): kube_src/ is a small module that requires it and replaces each staging module
by its published v0.x release, with one multi-call main (one link for six components).
The result is cached under ~/.cache/goship/kubernetes/<version>/, keyed by the sources'
hash, so only the first `lab up --kubernetes` (or scripts/kubernetes.sh) pays the build.

Also here: the pod sandbox ("pause") image, a tiny static program packed as an OCI tar
under the name containerd's CRI plugin asks for."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from goship.build.oci import MT_CONFIG, MT_INDEX, MT_LAYER, MT_MANIFEST
from goship.errors import LabError, PrerequisiteError

KUBE_VERSION = "v1.33.0"
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet",
              "kube-proxy", "kubectl")
MULTICALL = "goship-kube"
PAUSE_IMAGE = "registry.k8s.io/pause:3.6"  # containerd 1.6's default sandbox image
SRC = Path(__file__).with_name("kube_src")
SOURCES = ("go.mod", "go.sum", "main.go", "pause/main.go")
VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")


@dataclass(frozen=True)
class Binaries:
    dir: Path

    @property
    def multicall(self) -> Path:
        return self.dir / MULTICALL

    @property
    def pause_tar(self) -> Path:
        return self.dir / "pause.tar"

    @property
    def stamp(self) -> Path:
        return self.dir / "sources.sha256"


def tool_cache(name: str, env_var: str) -> Path:
    """Where a Go-built lab component is cached: $ENV_VAR, else $XDG_CACHE_HOME (or
    ~/.cache)/goship/NAME. Shared by every component built from a wrapper module."""
    if os.environ.get(env_var):
        return Path(os.environ[env_var])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "goship" / name


def hash_sources(src: Path, names: tuple[str, ...]) -> str:
    """What a cached build was made from: a changed wrapper module rebuilds it."""
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode() + b"\0" + (src / name).read_bytes() + b"\0")
    return h.hexdigest()


def cache_root() -> Path:
    """GOSHIP_KUBE_CACHE, else $XDG_CACHE_HOME (or ~/.cache)/goship/kubernetes."""
    return tool_cache("kubernetes", "GOSHIP_KUBE_CACHE")


def sources_hash(src: Path = SRC) -> str:
    return hash_sources(src, SOURCES)


def binaries(version: str = KUBE_VERSION) -> Binaries:
    return Binaries(cache_root() / version)


def is_cached(b: Binaries) -> bool:
    return (b.multicall.is_file() and b.pause_tar.is_file() and b.stamp.is_file()
            and b.stamp.read_text().strip() == sources_hash())


def ldflags(version: str = KUBE_VERSION) -> str:
    """-s -w, and the version stamped where `kubectl version` and /version read it (without
    it every component says v0.0.0-master)."""
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in VERSION_PACKAGES:
        for var, value in (("gitVersion", version), ("gitMajor", major), ("gitMinor", minor),
                           ("gitTreeState", "clean"), ("buildDate", "1970-01-01T00:00:00Z")):
            flags.append(f"-X {pkg}.{var}={value}")
    return " ".join(flags)


def go_tool() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").is_file()
                                else None)
    if go is None:
        raise PrerequisiteError(
            "the Kubernetes lab builds its components with the Go toolchain, which is missing",
            hint="install Go 1.24 or newer (https://go.dev/dl) and put its bin on PATH")
    return go


def goarch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def ensure(progress: Callable[[str], None] = lambda _m: None,
           version: str = KUBE_VERSION) -> Binaries:
    """The cached binaries, built first if missing or stale (minutes from an empty Go
    cache; `progress` hears what happens)."""
    b = binaries(version)
    if is_cached(b):
        return b
    go = go_tool()
    b.dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly -buildvcs=false"}
    started = time.monotonic()
    for what, out, pkg, flags in (
        (f"Kubernetes {version} ({', '.join(COMPONENTS)}) in one binary; several minutes "
         "from an empty Go cache", b.multicall, ".", ldflags(version)),
        ("the pod sandbox (pause)", b.dir / "pause", "./pause", "-s -w"),
    ):
        progress(f"building {what}")
        partial = out.with_name(out.name + ".partial")
        res = subprocess.run([go, "build", "-trimpath", "-ldflags", flags, "-o", str(partial),
                              pkg], cwd=SRC, env=env, capture_output=True, text=True,
                             timeout=3600, check=False)
        if res.returncode != 0:
            tail = " | ".join(res.stderr.strip().splitlines()[-5:])
            raise LabError(f"building the Kubernetes components failed: {tail}",
                           hint="`go` needs the module proxy (GOPROXY) or a filled module cache")
        partial.replace(out)
    pause = (b.dir / "pause").read_bytes()
    tmp = b.pause_tar.with_name("pause.tar.partial")
    tmp.write_bytes(pause_image(pause, goarch()))
    tmp.replace(b.pause_tar)
    b.stamp.write_text(sources_hash() + "\n")
    progress(f"built in {time.monotonic() - started:.0f}s into {b.dir}")
    return b


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (data, mode) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def pause_image(binary: bytes, arch: str, name: str = PAUSE_IMAGE) -> bytes:
    """An image tar `ctr images import` names `name`: one layer holding /pause. Carries
    both the OCI layout (with containerd's name annotation) and docker's manifest.json."""
    layer = _tar({"pause": (binary, 0o755)})
    gz = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0) as f:
        f.write(layer)
    layer_blob = gz.getvalue()
    config = _json({
        "architecture": arch, "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
    })
    manifest = _json({
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": _digest(config), "size": len(config)},
        "layers": [{"mediaType": MT_LAYER, "digest": _digest(layer_blob),
                    "size": len(layer_blob)}],
    })
    index = _json({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [{
        "mediaType": MT_MANIFEST, "digest": _digest(manifest), "size": len(manifest),
        "platform": {"architecture": arch, "os": "linux"},
        "annotations": {"io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]},
    }]})
    docker = _json([{"Config": f"blobs/sha256/{_digest(config)[7:]}", "RepoTags": [name],
                     "Layers": [f"blobs/sha256/{_digest(layer_blob)[7:]}"]}])
    files = {"oci-layout": (_json({"imageLayoutVersion": "1.0.0"}), 0o644),
             "index.json": (index, 0o644), "manifest.json": (docker, 0o644)}
    for blob in (layer_blob, config, manifest):
        files[f"blobs/sha256/{_digest(blob)[7:]}"] = (blob, 0o644)
    return _tar(files)


def main() -> int:
    """scripts/kubernetes.sh: build into the cache unless it is there already."""
    try:
        b = ensure(progress=lambda m: print(f"kubernetes: {m}", flush=True))
    except (LabError, PrerequisiteError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"kubernetes: {KUBE_VERSION} binaries in {b.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
