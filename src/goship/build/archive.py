"""`goship package`: release archives whose bytes depend only on their content.

Entries sorted, owner root:root, modes 0755/0644, every mtime the commit time, gzip header
mtime 0; zip dates clamped to 1980 (zip cannot store earlier ones)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from goship.build.gitinfo import Stamp
from goship.build.gobuild import Built, Plan

ZIP_EPOCH = 315532800  # 1980-01-01T00:00:00Z


@dataclass(frozen=True)
class Entry:
    path: str  # inside the archive, POSIX
    data: bytes
    mode: int


@dataclass
class Package:
    target: str
    path: Path
    release_id: str
    sha256: str
    manifest: dict[str, Any]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def collect(root: Path, dirs: Iterable[str], files: Iterable[str]) -> list[Entry]:
    """Asset directories and files, as they are in the project. Symlinks are followed only
    inside the project; anything pointing outside is refused."""
    out: list[Entry] = []
    real_root = root.resolve()
    for d in dirs:
        for path in sorted((root / d).rglob("*")):
            if path.is_dir():
                continue
            real = path.resolve()
            if not real.is_relative_to(real_root):
                from goship.errors import UsageError

                raise UsageError(f"{path} points outside the project ({real})",
                                 hint="copy the file into the project instead of linking it")
            mode = 0o755 if os.access(real, os.X_OK) else 0o644
            out.append(Entry(path.relative_to(root).as_posix(), real.read_bytes(), mode))
    for f in files:
        path = root / f
        out.append(Entry(Path(f).as_posix(), path.read_bytes(), 0o644))
    return out


def release_id(stamp: Stamp, entries: list[Entry]) -> str:
    """Version plus a digest of the content: the same id means the same bytes."""
    h = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e.path):
        h.update(f"{e.path}\0{e.mode:o}\0{sha256(e.data)}\n".encode())
    return f"{stamp.safe_version}-{h.hexdigest()[:10]}"


def manifest(app: str, plan: Plan, built: Built, entries: list[Entry], rid: str,
             go_version: str) -> dict[str, Any]:
    s = plan.stamp
    tc = plan.toolchain(built.target)
    extra: dict[str, Any] = {}
    if s.generated:
        # Built from the commit plus files it does not hold (build.before's output).
        extra["generated"] = {"digest": s.generated, "files": list(plan.generated)}
    return {**extra,
        "schema": 1,
        "app": app,
        "version": s.version,
        "release_id": rid,
        "commit": s.commit,
        "build_date": s.build_time,
        "go_version": go_version,
        "target": str(built.target),
        "binary": built.path.name,
        **({"processes": [x.name for x in built.extras]} if built.extras else {}),
        "build": {"flags": list(plan.flags), "ldflags": plan.ldflags, "tags": list(plan.tags),
                  "cgo": tc.cgo, **({"cc": tc.how} if tc.cgo else {})},
        "files": {e.path: sha256(e.data) for e in sorted(entries, key=lambda e: e.path)},
    }


def with_metadata(entries: list[Entry], meta: dict[str, Any]) -> list[Entry]:
    manifest_bytes = (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()
    all_entries = [*entries, Entry("manifest.json", manifest_bytes, 0o644)]
    sums = "".join(f"{sha256(e.data)}  {e.path}\n"
                   for e in sorted(all_entries, key=lambda e: e.path))
    return sorted([*all_entries, Entry("SHA256SUMS", sums.encode(), 0o644)],
                  key=lambda e: e.path)


def _dirs(entries: list[Entry]) -> list[str]:
    found: set[str] = set()
    for e in entries:
        parts = e.path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            found.add("/".join(parts[:i]))
    return sorted(found)


def tar_gz(entries: list[Entry], mtime: int) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        items: list[tuple[str, bytes | None, int]] = [(d + "/", None, 0o755)
                                                     for d in _dirs(entries)]
        items += [(e.path, e.data, e.mode) for e in entries]
        for name, data, mode in sorted(items, key=lambda x: x[0]):
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime, info.mode, info.uid, info.gid = mtime, mode, 0, 0
            info.uname = info.gname = "root"
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def zip_bytes(entries: list[Entry], mtime: int) -> bytes:
    stamp = time.gmtime(max(mtime, ZIP_EPOCH))[:6]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for e in entries:
            info = zipfile.ZipInfo(e.path, date_time=stamp)
            info.external_attr = (0o100000 | e.mode) << 16
            info.create_system = 3  # Unix, so the modes mean something
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, e.data)
    return out.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def package(app: str, root: Path, plan: Plan, built: Built, assets: list[str],
            files: list[str], go_version: str, extra: list[Entry] | None = None) -> Package:
    content = [Entry(built.path.name, built.path.read_bytes(), 0o755),
               *(Entry(x.name, x.read_bytes(), 0o755) for x in built.extras),
               *collect(root, assets, files), *(extra or [])]
    rid = release_id(plan.stamp, content)
    meta = manifest(app, plan, built, content, rid, go_version)
    entries = with_metadata(content, meta)
    t = built.target
    if t.os == "windows":
        data, ext = zip_bytes(entries, plan.stamp.epoch), "zip"
    else:
        data, ext = tar_gz(entries, plan.stamp.epoch), "tar.gz"
    path = plan.out_dir / f"{app}_{plan.stamp.safe_version}_{t.slug}.{ext}"
    write_atomic(path, data)
    return Package(str(t), path, rid, sha256(data), meta)


def verify_tree(directory: Path) -> list[str]:
    """Check every file listed in an unpacked release's manifest. Returns the problems."""
    meta = json.loads((directory / "manifest.json").read_text())
    problems = []
    for rel, digest in meta["files"].items():
        p = directory / rel
        if not p.is_file():
            problems.append(f"{rel}: missing")
        elif sha256(p.read_bytes()) != digest:
            problems.append(f"{rel}: sha256 mismatch")
    return problems
