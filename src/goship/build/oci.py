"""An OCI image written without a daemon or a registry (as ko and Jib do).

One layer: the binary and assets under /app, /tmp (1777), a CA bundle, /etc/passwd and
/etc/group with a non-root user, tzdata. The tar is an OCI image layout (oci-layout,
index.json, blobs/) and also carries a root manifest.json, so `docker load` accepts it.
Every byte is derived from the inputs: same inputs, same digest."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from goship.build.archive import Entry, write_atomic
from goship.build.gitinfo import Stamp

UID = 65532  # the "nonroot" user of distroless images
APP_DIR = "/app"  # the binary and its assets; the working directory
DATA_DIR = "/data"  # where {data} is mounted, in a Docker container or a pod
CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
ZONEINFO = Path("/usr/share/zoneinfo")
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class ImageInput:
    app: str
    arch: str
    binary: Entry  # path is the file name; it lands in /app
    assets: list[Entry]
    port: int
    port_env: str
    env: dict[str, str]
    # Files outside /app (paths relative to /): a cgo binary's C libraries and loader.
    system: tuple[Entry, ...] = ()


@dataclass
class Image:
    path: Path
    digests: dict[str, str]  # platform -> manifest digest
    tags: list[str]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def system_files() -> list[tuple[str, bytes | None, int, str | None]]:
    """(path, data, mode, link target) for what a Go service needs from an OS."""
    items: list[tuple[str, bytes | None, int, str | None]] = [
        ("etc/passwd", f"root:x:0:0:root:/root:/sbin/nologin\n"
                       f"nonroot:x:{UID}:{UID}:nonroot:/home/nonroot:/sbin/nologin\n".encode(),
         0o644, None),
        ("etc/group", f"root:x:0:\nnonroot:x:{UID}:\n".encode(), 0o644, None),
    ]
    for bundle in CA_BUNDLES:
        if Path(bundle).is_file():
            items.append(("etc/ssl/certs/ca-certificates.crt", Path(bundle).read_bytes(), 0o644,
                          None))
            break
    if ZONEINFO.is_dir():
        for p in sorted(ZONEINFO.rglob("*")):
            rel = p.relative_to(ZONEINFO)
            if rel.parts[0] in ("posix", "right") or p.is_dir():
                continue  # duplicates of the main tree
            name = f"usr/share/zoneinfo/{rel.as_posix()}"
            if p.is_symlink():
                items.append((name, None, 0o777, str(p.readlink())))
            elif p.is_file():
                items.append((name, p.read_bytes(), 0o644, None))
    return items


def layer(inp: ImageInput, mtime: int) -> bytes:
    """The uncompressed layer tar, entries sorted, fixed owners and times."""
    files: dict[str, tuple[bytes | None, int, str | None, int]] = {}
    for path, data, mode, link in system_files():
        files[path] = (data, mode, link, 0)
    for e in inp.system:
        files[e.path] = (e.data, e.mode, None, 0)
    files[f"app/{inp.binary.path}"] = (inp.binary.data, 0o755, None, 0)
    for e in inp.assets:
        files[f"app/{e.path}"] = (e.data, e.mode, None, 0)
    dirs: dict[str, int] = {"tmp": 0o1777, "app": 0o755, "home/nonroot": 0o700}
    for path in list(files):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.setdefault("/".join(parts[:i]), 0o755)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        names = sorted([*dirs, *files])
        for name in names:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid = mtime, 0, 0
            info.uname = info.gname = ""
            if name in dirs:
                info.type, info.mode = tarfile.DIRTYPE, dirs[name]
                if name == "home/nonroot":
                    info.uid = info.gid = UID
                tar.addfile(info)
                continue
            data, mode, link, _ = files[name]
            info.mode = mode
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                body = data or b""
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
    return raw.getvalue()


def build_image(inputs: list[ImageInput], stamp: Stamp, out: Path) -> Image:
    blobs: dict[str, bytes] = {}
    index_manifests = []
    docker_manifest = []
    digests: dict[str, str] = {}
    tags = []
    for inp in inputs:
        uncompressed = layer(inp, stamp.epoch)
        gz = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0, compresslevel=6) as f:
            f.write(uncompressed)
        layer_blob = gz.getvalue()
        env = {"PATH": APP_DIR, "GIN_MODE": "release", "SSL_CERT_FILE":
               "/etc/ssl/certs/ca-certificates.crt", "ZONEINFO": "/usr/share/zoneinfo",
               inp.port_env: str(inp.port), **inp.env}
        labels = {
            "org.opencontainers.image.title": inp.app,
            "org.opencontainers.image.version": stamp.version,
            "org.opencontainers.image.revision": stamp.commit,
            "org.opencontainers.image.created": stamp.build_time,
        }
        config = {
            "architecture": inp.arch,
            "os": "linux",
            "created": stamp.build_time,
            "config": {
                "Entrypoint": [f"{APP_DIR}/{inp.binary.path}"],
                "Env": [f"{k}={v}" for k, v in sorted(env.items())],
                "User": f"{UID}:{UID}",
                "WorkingDir": APP_DIR,
                "ExposedPorts": {f"{inp.port}/tcp": {}},
                "Labels": labels,
            },
            "rootfs": {"type": "layers", "diff_ids": [_digest(uncompressed)]},
            "history": [{"created": stamp.build_time, "created_by": "goship package --image"}],
        }
        config_blob = _json(config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": _digest(config_blob),
                       "size": len(config_blob)},
            "layers": [{"mediaType": MT_LAYER, "digest": _digest(layer_blob),
                        "size": len(layer_blob)}],
            "annotations": labels,
        }
        manifest_blob = _json(manifest)
        for blob in (layer_blob, config_blob, manifest_blob):
            blobs[_digest(blob)] = blob
        tag = f"{inp.app}:{stamp.safe_version}-{inp.arch}"
        tags.append(tag)
        digests[f"linux/{inp.arch}"] = _digest(manifest_blob)
        index_manifests.append({
            "mediaType": MT_MANIFEST, "digest": _digest(manifest_blob),
            "size": len(manifest_blob),
            "platform": {"architecture": inp.arch, "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": f"{stamp.safe_version}-"
                                                                 f"{inp.arch}"},
        })
        docker_manifest.append({
            "Config": f"blobs/sha256/{_digest(config_blob)[7:]}",
            "RepoTags": [tag],
            "Layers": [f"blobs/sha256/{_digest(layer_blob)[7:]}"],
        })
    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": index_manifests}
    files = {
        "oci-layout": _json({"imageLayoutVersion": "1.0.0"}),
        "index.json": _json(index),
        "manifest.json": _json(docker_manifest),
        **{f"blobs/sha256/{d[7:]}": b for d, b in blobs.items()},
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, stamp.epoch
            tar.addfile(info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, stamp.epoch
            tar.addfile(info, io.BytesIO(files[name]))
    write_atomic(out, raw.getvalue())
    return Image(out, digests, tags)
