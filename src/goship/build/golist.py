"""What `go list -e -deps -json` says about the build graph: packages with C files, embed
patterns that match nothing, the files that get embedded. Go's own answer, not regexes."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from goship.build.cgo import CgoPackage, is_not_cgo_file
from goship.errors import ApplyError, UsageError

FIELDS = "ImportPath,Dir,Standard,Module,CgoFiles,IgnoredGoFiles,EmbedPatterns,EmbedFiles,Error"
NO_MATCH = re.compile(r"pattern (\S+): (?:no matching files found|cannot embed directory "
                      r".*: contains no embeddable files)")


def parse_stream(text: str) -> list[dict[str, Any]]:
    """`go list -json` writes one JSON object after another, not an array."""
    decoder = json.JSONDecoder()
    out: list[dict[str, Any]] = []
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        obj, i = decoder.raw_decode(text, i)
        out.append(obj)


def list_packages(module_dir: Path, package: str, env: dict[str, str],
                  flags: list[str]) -> list[dict[str, Any]]:
    res = subprocess.run(["go", "list", "-e", "-deps", f"-json={FIELDS}", *flags, package],
                         cwd=module_dir, env=env, capture_output=True, text=True,
                         timeout=600, check=False)
    if res.returncode != 0:
        err = res.stderr.strip()
        if "inconsistent vendoring" in err:
            raise UsageError(f"vendor/ in {module_dir} does not match go.mod "
                             f"({err.splitlines()[0]})",
                             hint="run `go mod vendor` and commit it, or delete vendor/ to "
                             "build from the module cache")
        raise ApplyError(f"go list failed: {err.splitlines()[-1] if err else res.returncode}")
    return parse_stream(res.stdout)


def _main_module(p: dict[str, Any]) -> bool:
    return bool((p.get("Module") or {}).get("Main"))


@dataclass(frozen=True)
class EmbedProblem:
    pattern: str
    directory: str
    position: str


def embed_problems(packages: list[dict[str, Any]]) -> list[EmbedProblem]:
    out = []
    for p in packages:
        err = (p.get("Error") or {}).get("Err", "")
        m = NO_MATCH.search(err)
        if m and _main_module(p):
            out.append(EmbedProblem(m.group(1), p.get("Dir", ""),
                                    (p.get("Error") or {}).get("Pos", "")))
    return out


def embedded_files(packages: list[dict[str, Any]]) -> list[Path]:
    """Every file the module's own packages embed, as absolute paths."""
    return sorted(Path(p["Dir"]) / f for p in packages if _main_module(p)
                  for f in p.get("EmbedFiles") or [])


def cgo_packages(packages: list[dict[str, Any]]) -> list[CgoPackage]:
    """Non-standard packages with C files, each with the text of its `!cgo` files (the
    standard library's cgo users, net and os/user, have pure-Go fallbacks)."""
    out = []
    for p in packages:
        if p.get("Standard") or not p.get("CgoFiles"):
            continue
        directory = Path(p.get("Dir", "."))
        fallback = []
        for name in p.get("IgnoredGoFiles") or []:
            try:
                text = (directory / name).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if is_not_cgo_file(text):
                fallback.append(text)
        out.append(CgoPackage(p["ImportPath"], tuple(p["CgoFiles"]), tuple(fallback)))
    return out
