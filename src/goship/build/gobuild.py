"""`goship build`: checks, then the target matrix in parallel, atomically."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from goship.build import cgo as cgo_
from goship.build import tidy
from goship.build.gitinfo import Stamp
from goship.config import Config
from goship.errors import ApplyError, ConfigError, PrerequisiteError, UsageError
from goship.ui import ui

# The flags of a module-cache build (the Dockerfile's too); a vendored module builds with
# -mod=vendor instead (mod_mode).
BUILD_FLAGS = ("-trimpath", "-mod=readonly")


@dataclass(frozen=True)
class Target:
    os: str
    arch: str

    @classmethod
    def parse(cls, text: str) -> Target:
        os_, _, arch = text.partition("/")
        return cls(os_, arch)

    def __str__(self) -> str:
        return f"{self.os}/{self.arch}"

    @property
    def slug(self) -> str:
        return f"{self.os}_{self.arch}"

    def binary(self, name: str) -> str:
        return f"{name}.exe" if self.os == "windows" else name


@dataclass
class Built:
    target: Target
    path: Path
    size: int
    sha256: str
    seconds: float
    notes: list[str] = field(default_factory=list)
    # [processes.*]: their binaries, built beside the web one with the same flags.
    extras: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    """Everything a build needs, computed before anything runs."""

    module_dir: Path
    main: str
    binary: str
    targets: tuple[Target, ...]
    ldflags: str
    tags: tuple[str, ...]
    cgo: bool
    out_dir: Path
    stamp: Stamp
    mod: str = "readonly"
    toolchains: tuple[cgo_.Toolchain, ...] = ()
    generated: tuple[str, ...] = ()  # shipped or embedded files git does not track
    processes: tuple[tuple[str, str], ...] = ()  # (binary, main) of each [processes.*]

    @property
    def flags(self) -> tuple[str, ...]:
        return ("-trimpath", f"-mod={self.mod}")

    def toolchain(self, target: Target) -> cgo_.Toolchain:
        for t in self.toolchains:
            if t.target == str(target):
                return t
        return cgo_.Toolchain(str(target), cgo=self.cgo)


def ldflags(stamp_vars: dict[str, str], stamp: Stamp, *, strip: bool = True) -> str:
    """`-s -w -X pkg.Var=value ...`, variables sorted so the string is deterministic."""
    return stamp_ldflags(stamp_vars, stamp.version, stamp.commit, stamp.build_time,
                         ["-s", "-w"] if strip else [])


def stamp_ldflags(stamp_vars: dict[str, str], version: str, commit: str, build_time: str,
                  prefix: list[str]) -> str:
    """`prefix -X pkg.Var=value ...` with the {version} {commit} {build_time} placeholders
    filled (the Dockerfile fills them with its build arguments)."""
    parts = list(prefix)
    for var in sorted(stamp_vars):
        value = (stamp_vars[var].replace("{version}", version)
                 .replace("{commit}", commit).replace("{build_time}", build_time))
        parts += ["-X", f"{var}={value}"]
    return " ".join(parts)


def package_arg(main: str) -> str:
    return "." if main == "." else f"./{main}"


def go_argv(plan: Plan, output: Path, target: Target | None = None,
            main: str | None = None) -> list[str]:
    argv = ["go", "build", *plan.flags]
    if plan.tags:
        argv += ["-tags", ",".join(plan.tags)]
    flags = plan.ldflags
    if target is not None and plan.toolchain(target).cgo:
        # The external linker's GNU build ID derived from Go's content-hash build ID, so
        # the same inputs give the same bytes with cgo too.
        flags = f"{flags} -B gobuildid"
    return [*argv, "-ldflags", flags, "-o", str(output),
            package_arg(plan.main if main is None else main)]


def build_vars(plan: Plan, target: Target) -> dict[str, str]:
    """The environment variables that decide the build (printed by -v)."""
    tc = plan.toolchain(target)
    out = {"GOOS": target.os, "GOARCH": target.arch, "CGO_ENABLED": "1" if tc.cgo else "0"}
    if tc.cc is not None:
        out["CC"] = shlex.join(tc.cc)  # go splits CC itself, honouring quotes
    if tc.how.startswith("zig"):
        # zig's linker ignores the -s that go passes for -ldflags=-s: strip on its own.
        out["CGO_LDFLAGS"] = f"{os.environ.get('CGO_LDFLAGS', '')} -s".strip()
    return out


def go_env(plan: Plan, target: Target) -> dict[str, str]:
    env = dict(os.environ)
    env.update(build_vars(plan, target))
    env.pop("GOFLAGS", None)  # goship's flags are the build's flags: nothing added behind them
    return env


def display(plan: Plan, target: Target, output: Path) -> str:
    """The exact command, as a shell would take it."""
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in build_vars(plan, target).items())
    return (f"(cd {shlex.quote(str(plan.module_dir))} && env -u GOFLAGS {env} "
            f"{shlex.join(go_argv(plan, output, target))})")


def mod_mode(goflags: str, vendor: bool) -> tuple[str, str]:
    """-mod for the build, and why: GOFLAGS's own -mod wins (the user said so), then a
    vendor/ directory (Go's own default since 1.14), else readonly."""
    for flag in goflags.split():
        if flag.startswith("-mod="):
            return flag.removeprefix("-mod="), "from GOFLAGS"
    if vendor:
        return "vendor", "vendor/ is present"
    return "readonly", "module cache"


def find_zig() -> tuple[str, ...] | None:
    """zig on PATH, else the ziglang package beside goship (`pip install 'goship[zig]'`)."""
    found = shutil.which("zig")
    if found is not None:
        return (found,)
    if importlib.util.find_spec("ziglang") is not None:
        return (sys.executable, "-m", "ziglang")
    return None


def host_target() -> str:
    res = subprocess.run(["go", "env", "GOHOSTOS", "GOHOSTARCH"], capture_output=True,
                         text=True, timeout=60, check=False)
    parts = res.stdout.split()
    return "/".join(parts) if len(parts) == 2 else "unknown/unknown"


def toolchains(config: Config, targets: tuple[Target, ...], file: str
               ) -> tuple[cgo_.Toolchain, ...]:
    """The C compiler of every target, decided before anything runs: a cgo target nobody
    can build is refused with what to install or set."""
    if not config.build.cgo:
        return tuple(cgo_.Toolchain(str(t), cgo=False) for t in targets)
    host, zig = host_target(), find_zig()
    out = []
    for t in targets:
        choice = cgo_.choose(str(t), cgo=True, host=host, cc=config.build.cc,
                             which=shutil.which, zig=zig)
        if isinstance(choice, cgo_.Refusal):
            raise ConfigError(file, "build.cgo", f"{choice.target}: {choice.message}",
                              hint=choice.hint)
        out.append(choice)
    return tuple(out)


def require_go() -> str:
    go = shutil.which("go")
    if go is None:
        raise PrerequisiteError("the Go toolchain is not installed",
                                hint="install Go (https://go.dev/dl) and put it on PATH")
    return go


def known_targets() -> set[str]:
    res = subprocess.run(["go", "tool", "dist", "list"], capture_output=True, text=True,
                         timeout=60, check=False)
    return set(res.stdout.split())


def go_version() -> str:
    res = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True,
                         timeout=60, check=False)
    return res.stdout.strip() or "unknown"


@dataclass(frozen=True)
class Inputs:
    module_dir: Path
    targets: tuple[Target, ...]
    toolchains: tuple[cgo_.Toolchain, ...] = ()
    mod: str = "readonly"


def check_inputs(config: Config, root: Path, targets: list[str] | None = None,
                 file: str = "goship.toml") -> Inputs:
    """Everything about the project that can be wrong, checked before git or the compiler
    is asked anything."""
    require_go()
    module_dir = (root / config.app.module_dir).resolve()
    if not (module_dir / "go.mod").is_file():
        raise ConfigError(file, "app.module_dir", f"no go.mod in {module_dir}",
                          hint="point app.module_dir at the directory holding go.mod")
    main_dir = module_dir / config.app.main
    if not main_dir.is_dir() or not any(main_dir.glob("*.go")):
        raise ConfigError(file, "app.main", f"no Go package at {main_dir}",
                          hint="set app.main to the main package, e.g. \"cmd/server\"")
    chosen = targets or config.build.targets
    known = known_targets()
    for i, t in enumerate(chosen):
        if t not in known:
            msg = f"{t!r} is not a target this Go toolchain knows"
            hint = "`go tool dist list` shows them"
            if targets:
                raise UsageError(f"--target {t}: {msg}", hint=hint)
            raise ConfigError(file, f"build.targets[{i}]", msg, hint=hint)
    for i, a in enumerate(config.build.assets):
        if not (root / a).is_dir():
            raise ConfigError(file, f"build.assets[{i}]", f"directory not found: {root / a}",
                              hint="create it or remove it from build.assets")
    for i, f in enumerate(config.build.files):
        if not (root / f).is_file():
            raise ConfigError(file, f"build.files[{i}]", f"file not found: {root / f}",
                              hint="create it or remove it from build.files")
    parsed = tuple(Target.parse(t) for t in dict.fromkeys(chosen))
    mod, why = mod_mode(os.environ.get("GOFLAGS", ""), (module_dir / "vendor").is_dir())
    ui.debug(f"-mod={mod} ({why})")
    return Inputs(module_dir, parsed, toolchains(config, parsed, file), mod)


def make_plan(config: Config, root: Path, inputs: Inputs, stamp: Stamp) -> Plan:
    return Plan(
        module_dir=inputs.module_dir, main=config.app.main, binary=config.app.binary_name,
        targets=inputs.targets,
        ldflags=ldflags(config.app.stamp, stamp), tags=tuple(config.build.tags),
        cgo=config.build.cgo, out_dir=root / config.build.out_dir / stamp.safe_version,
        stamp=stamp, mod=inputs.mod, toolchains=inputs.toolchains,
        processes=tuple((name, p.main) for name, p in sorted(config.processes.items())),
    )


def check_module(module_dir: Path, *, fix: bool, vet: bool) -> list[str]:
    """go.mod/go.sum tidy, `go mod verify`, `go vet` when asked. A missing requirement or
    checksum fails; stale go.sum lines and unused requirements are a warning. The result
    says "fixed" when --fix changed go.mod/go.sum (the tree is then dirty)."""
    done = []
    res = subprocess.run(["go", "mod", "tidy", "-diff"], cwd=module_dir, capture_output=True,
                         text=True, timeout=600, check=False)
    report = tidy.classify(res.stdout)
    if res.returncode != 0 and report.clean:
        sys.stderr.write(res.stderr)
        raise ApplyError("go mod tidy -diff failed (output above)")
    if report.clean:
        done.append("go mod tidy: tidy")
    elif fix:
        subprocess.run(["go", "mod", "tidy"], cwd=module_dir, check=True, timeout=600)
        done.append(f"go mod tidy: fixed ({report.summary()})")
    else:
        for line in report.details():
            sys.stderr.write(line + "\n")
        if report.errors:
            raise UsageError(f"go.mod/go.sum are not tidy: {report.summary()} (first lines "
                             "above)", hint="run `go mod tidy` and commit, or pass --fix")
        ui.warn(f"go.mod/go.sum: {report.summary()} (harmless to the build; `go mod tidy` "
                "or --fix cleans them)")
        done.append(f"go mod tidy: {report.summary()}")
    verify = subprocess.run(["go", "mod", "verify"], cwd=module_dir, capture_output=True,
                            text=True, timeout=600, check=False)
    if verify.returncode != 0:
        sys.stderr.write(verify.stdout + verify.stderr)
        raise ApplyError("go mod verify failed: a downloaded module does not match go.sum")
    done.append("go mod verify: all modules verified")
    if vet:
        vres = subprocess.run(["go", "vet", "./..."], cwd=module_dir, timeout=600, check=False)
        if vres.returncode != 0:
            raise ApplyError("go vet found problems (output above)")
        done.append("go vet: clean")
    return done


def _build_one(plan: Plan, target: Target, tmp_root: Path) -> Built:
    out = tmp_root / target.slug / target.binary(plan.binary)
    out.parent.mkdir(parents=True)
    previous = plan.out_dir / target.slug / out.name
    if previous.is_file():
        # A copy of the last build: when its build ID still matches, go skips the link
        # step (~1 s for a Gin binary). A copy, not a link: go may rewrite it in place.
        shutil.copy2(previous, out)
    started = time.monotonic()
    ui.debug(f"{target}: {display(plan, target, out)}")
    # The toolchain's own error output reaches the user unchanged (stderr is not captured).
    res = subprocess.run(go_argv(plan, out, target), cwd=plan.module_dir,
                         env=go_env(plan, target), timeout=1800, check=False)
    if res.returncode != 0:
        raise ApplyError(f"go build failed for {target} (the compiler's output is above)")
    extras = []
    for name, main in plan.processes:
        extra = out.parent / target.binary(name)
        res = subprocess.run(go_argv(plan, extra, target, main), cwd=plan.module_dir,
                             env=go_env(plan, target), timeout=1800, check=False)
        if res.returncode != 0:
            raise ApplyError(f"go build failed for {target}, process {name} ({main}; the "
                             f"compiler's output is above)")
        extras.append(extra)
    data = out.read_bytes()
    return Built(target, out, len(data), hashlib.sha256(data).hexdigest(),
                 time.monotonic() - started, extras=extras)


def build(plan: Plan) -> list[Built]:
    """Build every target into a temporary directory, then move each into place: a failed
    build leaves no artifact, half-written or stale."""
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=".build-", dir=plan.out_dir))
    try:
        workers = max(1, min(len(plan.targets), os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            built = list(pool.map(lambda t: _build_one(plan, t, tmp_root), plan.targets))
        for b in built:
            final = plan.out_dir / b.target.slug
            if final.exists():
                shutil.rmtree(final)
            (tmp_root / b.target.slug).rename(final)
            b.path = final / b.path.name
            b.extras = [final / x.name for x in b.extras]
        return built
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
        with contextlib.suppress(OSError):
            plan.out_dir.rmdir()  # only if the failed build left it empty
