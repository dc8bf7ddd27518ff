"""Version, commit and build date, from git and never from the wall clock."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from goship.errors import UsageError

SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Stamp:
    version: str
    commit: str
    epoch: int  # the commit time: builds of one commit agree on it
    dirty: bool
    generated: str = ""  # digest of the shipped files git does not track (build.before's)

    @property
    def build_time(self) -> str:
        return datetime.fromtimestamp(self.epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def safe_version(self) -> str:
        """The version as a file-name part."""
        return SAFE.sub("-", self.version).strip("-") or "0"

    def with_generated(self, digest: str) -> Stamp:
        """The version says the release is the commit plus generated files: SemVer build
        metadata `+gen.<8 hex>`, so two builds with the same files agree."""
        if not digest:
            return self
        return replace(self, version=f"{self.version}+gen.{digest[:8]}", generated=digest)


def generated_digest(files: dict[str, bytes]) -> str:
    """A digest of produced files: path and content, in path order. Empty when none."""
    if not files:
        return ""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{path}\0{hashlib.sha256(files[path]).hexdigest()}\n".encode())
    return h.hexdigest()


def tracked(root: Path) -> set[str] | None:
    """Paths git tracks under root (relative to it); None outside a repository."""
    git = shutil.which("git")
    if git is None:
        return None
    res = subprocess.run([git, "-C", str(root), "ls-files", "-z"], capture_output=True,
                         timeout=60, check=False)
    if res.returncode != 0:
        return None
    return {p for p in res.stdout.decode("utf-8", "surrogateescape").split("\0") if p}


def _git(root: Path, *args: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    res = subprocess.run([git, "-C", str(root), *args], capture_output=True, text=True,
                         timeout=60, check=False)
    return res.stdout.rstrip("\n") if res.returncode == 0 else None


def source_date_epoch() -> int | None:
    raw = os.environ.get("SOURCE_DATE_EPOCH")
    if raw is None:
        return None
    if not raw.isdigit():
        raise UsageError(f"SOURCE_DATE_EPOCH={raw!r} is not a whole number of seconds")
    return int(raw)


def derive(root: Path, version_cfg: str, *, allow_dirty: bool) -> Stamp:
    """`version_cfg` is app.version: "git" or a literal. A dirty tree is refused unless
    allowed, and then the version says "-dirty"."""
    inside = _git(root, "rev-parse", "--is-inside-work-tree") == "true"
    has_commit = inside and _git(root, "rev-parse", "--verify", "HEAD") is not None
    if not has_commit:
        if version_cfg == "git":
            raise UsageError(f"{root} is not a git repository with a commit, so there is no "
                             "version to describe",
                             hint='commit your code, or set app.version = "1.2.3"')
        epoch = source_date_epoch()
        return Stamp(version_cfg, "unknown", epoch if epoch is not None else 0, False)
    commit = _git(root, "rev-parse", "HEAD") or "unknown"
    epoch = source_date_epoch()
    if epoch is None:
        epoch = int(_git(root, "log", "-1", "--format=%ct") or 0)
    changes = _git(root, "status", "--porcelain", "--untracked-files=no") or ""
    dirty = bool(changes)
    if dirty and not allow_dirty:
        files = ", ".join(line[3:] for line in changes.splitlines()[:3])
        more = "..." if len(changes.splitlines()) > 3 else ""
        raise UsageError(f"the working tree has uncommitted changes ({files}{more}); a release "
                         "is built from a commit",
                         hint="commit them, or pass --allow-dirty (the version then says "
                         "-dirty)")
    if version_cfg == "git":
        version = _git(root, "describe", "--tags", "--always", "--dirty") or commit[:12]
    else:
        version = f"{version_cfg}-dirty" if dirty else version_cfg
    return Stamp(version, commit, epoch, dirty)
