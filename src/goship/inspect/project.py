"""What Go's own tools say about the binary: `go list -deps -json` of the main package
(its files, cgo, embed patterns, imports), `go mod edit -json`, `git ls-files`."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from goship.build.golist import parse_stream
from goship.inspect import detect

SKIP = {"vendor", "node_modules", ".git", "testdata"}


def _go_env() -> dict[str, str]:
    # Offline and read-only: init never downloads or edits go.mod; cgo on so that
    # CgoFiles are listed (with CGO_ENABLED=0 go list hides them).
    return {**os.environ, "GOFLAGS": "-mod=mod", "GOWORK": "off", "GOPROXY": "off",
            "CGO_ENABLED": "1"}


@dataclass
class Packages:
    files: list[Path] = field(default_factory=list)  # Go files of the main module's packages
    cgo: list[str] = field(default_factory=list)  # non-standard packages with cgo files
    imports: list[str] = field(default_factory=list)
    embeds: list[tuple[Path, str]] = field(default_factory=list)  # (package dir, pattern)


def list_deps(module_root: Path, main: str) -> Packages | None:
    """The packages one binary is made of, or None when go cannot tell (no toolchain,
    modules not downloaded)."""
    go = shutil.which("go")
    if not go:
        return None
    try:
        pkg = "." if main == "." else "./" + main
        res = subprocess.run([go, "list", "-e", "-deps", "-json", pkg], cwd=module_root,
                             capture_output=True, text=True, timeout=180, check=False,
                             env=_go_env())
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0 or not res.stdout.strip():
        return None
    pkgs = parse_stream(res.stdout)
    out = Packages()
    for p in pkgs:
        out.imports.append(p.get("ImportPath", ""))
        if p.get("CgoFiles") and not p.get("Standard"):
            out.cgo.append(p["ImportPath"])
        if (p.get("Module") or {}).get("Main"):
            d = Path(p["Dir"])
            out.files.extend(d / f for f in (p.get("GoFiles") or []) + (p.get("CgoFiles") or []))
            out.embeds.extend((d, pat) for pat in p.get("EmbedPatterns") or [])
    if not out.files:
        return None
    return out


def gomod_json(module_root: Path) -> dict[str, Any] | None:
    go = shutil.which("go")
    if not go:
        return None
    try:
        res = subprocess.run([go, "mod", "edit", "-json"], cwd=module_root,
                             capture_output=True, text=True, timeout=30, check=False,
                             env=_go_env())
        data: dict[str, Any] | None = (json.loads(res.stdout) if res.returncode == 0
                                       else None)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    return data


def tracked(root: Path) -> set[str] | None:
    """Files git tracks under root (relative paths), None outside a repository."""
    try:
        res = subprocess.run(["git", "ls-files", "-z", "--", "."], cwd=root,
                             capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        return None
    return {f for f in res.stdout.split("\0") if f}


def module_dirs(root: Path) -> list[str]:
    """Directories below root holding a go.mod (a monorepo's server/), two levels deep."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP and not d.startswith("."))
        if len(rel.parts) >= 2:
            dirnames[:] = []
        if "go.mod" in filenames and rel.parts:
            found.append(rel.as_posix())
    return found


@dataclass(frozen=True)
class MissingEmbed:
    pattern: str  # relative to the module root
    where: str
    step: str | None  # the command that makes the files
    step_where: str


def missing_embeds(module_root: Path, embeds: list[tuple[Path, str]],
                   git_files: set[str] | None) -> list[MissingEmbed]:
    out = []
    for pkg_dir, pattern in embeds:
        clean = pattern.removeprefix("all:")
        rel_pkg = pkg_dir.relative_to(module_root).as_posix()
        full = clean if rel_pkg == "." else f"{rel_pkg}/{clean}"
        if git_files is None:
            present = any(module_root.glob(full))
        else:
            present = any(fnmatch.fnmatch(f, full) or f.startswith(full.rstrip("/") + "/")
                          for f in git_files)
        if present:
            continue
        top = full.split("*")[0].rstrip("/")
        step, where = build_step(module_root, top)
        out.append(MissingEmbed(full, rel_pkg, step, where))
    return out


def build_step(module_root: Path, produced: str) -> tuple[str | None, str]:
    """The Makefile target or package.json script that writes `produced`."""
    makefile = module_root / "Makefile"
    if makefile.is_file():
        targets = detect.make_targets(makefile.read_text(encoding="utf-8", errors="replace"))
        for name, (line, recipe) in targets.items():
            text = "\n".join(recipe)
            scripts = [module_root / s for s in re.findall(r"([\w./-]+\.sh)\b", text)]
            bodies = [text, *(s.read_text(errors="replace") for s in scripts if s.is_file())]
            if any(produced in b or produced.rsplit("/", 1)[0] + "/" in b for b in bodies) \
                    and "go build" not in text:
                return f"make {name}", f"Makefile:{line}"
    parts = produced.split("/")
    for i in range(len(parts), 0, -1):
        pj = module_root.joinpath(*parts[:i]) / "package.json"
        if pj.is_file():
            try:
                scripts = json.loads(pj.read_text()).get("scripts", {})
            except ValueError:
                continue
            if "build" in scripts:
                d = "/".join(parts[:i])
                return f"cd {d} && npm ci && npm run build", f"{d}/package.json"
    return None, ""
