"""cgo: which C compiler builds each target, and whether the code needs cgo at all.

Pure decisions from facts (the host's platform, which programs are on PATH, what
`go list -deps -json` says); gobuild runs them before anything is built."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

ZIG = "zig"  # build.cc value: use `zig cc` with the target's triple

# GOOS/GOARCH -> zig's target triple. darwin is absent on purpose: Go's darwin runtime links
# Apple frameworks that zig does not ship.
ZIG_TRIPLES = {
    "linux/amd64": "x86_64-linux-gnu",
    "linux/arm64": "aarch64-linux-gnu",
    "linux/arm": "arm-linux-gnueabihf",
    "linux/386": "x86-linux-gnu",
    "linux/riscv64": "riscv64-linux-gnu",
    "linux/ppc64le": "powerpc64le-linux-gnu",
    "linux/s390x": "s390x-linux-gnu",
    "windows/amd64": "x86_64-windows-gnu",
    "windows/arm64": "aarch64-windows-gnu",
    "windows/386": "x86-windows-gnu",
}

# Debian's cross-compiler packages, for the hint.
DEBIAN_CROSS = {
    "linux/arm64": ("gcc-aarch64-linux-gnu", "aarch64-linux-gnu-gcc"),
    "linux/arm": ("gcc-arm-linux-gnueabihf", "arm-linux-gnueabihf-gcc"),
    "linux/amd64": ("gcc-x86-64-linux-gnu", "x86_64-linux-gnu-gcc"),
    "linux/riscv64": ("gcc-riscv64-linux-gnu", "riscv64-linux-gnu-gcc"),
    "linux/ppc64le": ("gcc-powerpc64le-linux-gnu", "powerpc64le-linux-gnu-gcc"),
    "linux/s390x": ("gcc-s390x-linux-gnu", "s390x-linux-gnu-gcc"),
    "windows/amd64": ("gcc-mingw-w64-x86-64", "x86_64-w64-mingw32-gcc"),
}


@dataclass(frozen=True)
class Toolchain:
    """How one target is compiled. `cc` is None when CGO is off or Go's default C
    compiler (cc) builds it natively."""

    target: str
    cgo: bool
    cc: tuple[str, ...] | None = None
    how: str = "CGO off"


@dataclass(frozen=True)
class Refusal:
    target: str
    message: str
    hint: str


def zig_hint(target: str) -> str:
    return ("or install zig (`pip install 'goship[zig]'`, or zig on PATH) and set "
            f'build.cc."{target}" = "zig"')


def choose(target: str, *, cgo: bool, host: str, cc: Mapping[str, str],
           which: Callable[[str], str | None], zig: tuple[str, ...] | None
           ) -> Toolchain | Refusal:
    """The C compiler for `target`: build.cc's entry when there is one ("zig" for zig cc),
    the machine's cc for a native build, zig for a cross build when it is installed;
    otherwise a refusal that says what to install or set."""
    if not cgo:
        return Toolchain(target, cgo=False)
    named = cc.get(target)
    if named == ZIG or (named is None and target != host and zig is not None):
        if target not in ZIG_TRIPLES:
            return Refusal(target, f"zig cc cannot build cgo for {target} (Go's {target} "
                           "runtime links system libraries zig does not ship)",
                           f"build {target} on a {target} machine, or set "
                           f'build.cc."{target}" to a C cross-compiler')
        if zig is None:
            return Refusal(target, f'build.cc."{target}" = "zig" but zig is not installed',
                           "pip install 'goship[zig]' (the ziglang package), or put zig on "
                           "PATH")
        argv = (*zig, "cc", "-target", ZIG_TRIPLES[target])
        return Toolchain(target, cgo=True, cc=argv, how=f"zig cc -target {ZIG_TRIPLES[target]}")
    if named is not None:
        program = named.split()[0]
        if which(program) is None:
            return Refusal(target, f'build.cc."{target}" = {named!r}: {program} is not on '
                           "PATH", _install_hint(target, host))
        return Toolchain(target, cgo=True, cc=tuple(named.split()), how=named)
    if target == host:
        found = next((c for c in ("cc", "gcc", "clang") if which(c) is not None), None)
        if found is None:
            return Refusal(target, "build.cgo = true needs a C compiler and none is on PATH "
                           "(cc, gcc, clang)", "apt-get install gcc libc6-dev (or your "
                           "system's C compiler)")
        return Toolchain(target, cgo=True, cc=None if found == "cc" else (found,),
                         how=f"native, {found}")
    return Refusal(target, f"build.cgo = true and {target} is a cross-compile from {host}: "
                   "no C compiler for it", _install_hint(target, host))


def _install_hint(target: str, host: str) -> str:
    debian = DEBIAN_CROSS.get(target)
    if target == host:
        first = "apt-get install gcc libc6-dev"
    elif debian is not None:
        first = (f'apt-get install {debian[0]} and set build.cc."{target}" = "{debian[1]}"')
    else:
        first = f'set build.cc."{target}" to a C cross-compiler for {target}'
    return f"{first}, {zig_hint(target)}" if target in ZIG_TRIPLES else first


# --- does the code need cgo? ---------------------------------------------------------------

NOT_CGO = re.compile(r"^//go:build\s+.*!\s*cgo\b", re.M)
STUB_WORDS = re.compile(r"requires cgo|CGO_ENABLED|this is a stub|\bstub\b", re.I)


@dataclass(frozen=True)
class CgoPackage:
    """One non-standard package of the build graph with C files (from `go list -deps`,
    listed with CGO_ENABLED=1). `fallback`: the text of its `//go:build !cgo` files."""

    import_path: str
    cgo_files: tuple[str, ...]
    fallback: tuple[str, ...]


@dataclass(frozen=True)
class CgoNeed:
    refuse: tuple[str, ...]  # packages that cannot work with CGO off
    unsure: tuple[str, ...]  # packages with a pure-Go fallback that may be slower or partial


def need(packages: Iterable[CgoPackage]) -> CgoNeed:
    """A package with C files and no `!cgo` fallback does not build with CGO off; one whose
    fallback is a stub (mattn/go-sqlite3: "requires cgo to work. This is a stub") builds
    and fails at run time. Both are refused; a real pure-Go fallback is only worth a
    warning."""
    refuse, unsure = [], []
    for p in packages:
        if not p.cgo_files:
            continue
        if not p.fallback or any(STUB_WORDS.search(text) for text in p.fallback):
            refuse.append(p.import_path)
        else:
            unsure.append(p.import_path)
    return CgoNeed(tuple(sorted(refuse)), tuple(sorted(unsure)))


def is_not_cgo_file(text: str) -> bool:
    return bool(NOT_CGO.search(text))
