"""build and package as the CLI (and later deploy) run them: config in, artifacts out."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from goship.build import archive, before, cgo, gitinfo, gobuild, golist, oci, upx
from goship.build.gobuild import Built, Plan
from goship.config import Config, Project
from goship.errors import ConfigError, UsageError
from goship.ui import ui


@dataclass
class BuildResult:
    plan: Plan
    built: list[Built]
    checks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def run_build(project: Project, config: Config, *, targets: list[str] | None = None,
              allow_dirty: bool = False, fix: bool = False, vet: bool = False,
              checks: bool = True) -> BuildResult:
    root = project.root
    inputs = gobuild.check_inputs(config, root, targets, file=str(project.file))
    stamp = gitinfo.derive(root, config.app.version, allow_dirty=allow_dirty)
    done = gobuild.check_module(inputs.module_dir, fix=fix, vet=vet) if checks else []
    if any(line.startswith("go mod tidy: fixed") for line in done):
        # --fix changed go.mod/go.sum: the tree is no longer the commit.
        stamp = _rederive(root, config, allow_dirty, "`go mod tidy` (--fix) changed")
    for line in done:
        ui.debug(line)
    if config.build.before:
        before.run_steps(root, config.build.before)
        stamp = _rederive(root, config, allow_dirty, "build.before changed")
    notes: list[str] = []
    graph = analyse(config, inputs, project, notes)
    stamp = stamp.with_generated(_generated(root, config, graph, stamp))
    plan = gobuild.make_plan(config, root, inputs, stamp)
    plan = replace(plan, generated=tuple(sorted(_produced(root, config, graph, stamp))))
    ui.info(f"building {plan.binary} {stamp.version} for "
            f"{', '.join(str(t) for t in plan.targets)}")
    for tc in plan.toolchains:
        if tc.cgo:
            ui.info(f"  {tc.target}: cgo, {tc.how}")
    if plan.generated:
        ui.info(f"  {len(plan.generated)} embedded or shipped file(s) are not in git (made by "
                f"build.before?): the version says +gen.{stamp.generated[:8]}")
    built = gobuild.build(plan)
    result = BuildResult(plan, built, done, notes)
    if config.build.upx:
        _upx(result, config, root)
    return result


def _rederive(root: Path, config: Config, allow_dirty: bool, what: str) -> gitinfo.Stamp:
    try:
        return gitinfo.derive(root, config.app.version, allow_dirty=allow_dirty)
    except UsageError as e:
        raise UsageError(f"{what} files git tracks: {e.message}", hint=e.hint) from None


def analyse(config: Config, inputs: gobuild.Inputs, project: Project,
            notes: list[str]) -> list[dict[str, Any]]:
    """The build graph as Go sees it (for the first target, with cgo on so C files show):
    unmatched embed patterns fail, a cgo dependency with cgo off fails or warns."""
    target = inputs.targets[0]
    env = {**os.environ, "GOOS": target.os, "GOARCH": target.arch, "CGO_ENABLED": "1"}
    env.pop("GOFLAGS", None)
    flags = [f"-mod={inputs.mod}"]
    if config.build.tags:
        flags += ["-tags", ",".join(config.build.tags)]
    packages = golist.list_packages(inputs.module_dir, gobuild.package_arg(config.app.main),
                                    env, flags)
    for problem in golist.embed_problems(packages):
        hint = ("add a build.before step that produces it (e.g. \"npm --prefix web ci && "
                "npm --prefix web run build\")" if not config.build.before else
                "the build.before steps ran but did not produce it: check where they write")
        raise UsageError(f"//go:embed pattern {problem.pattern!r} ({problem.position}) "
                         f"matches no files in {problem.directory}", hint=hint)
    if not config.build.cgo:
        verdict = cgo.need(golist.cgo_packages(packages))
        if verdict.refuse:
            verb = "needs" if len(verdict.refuse) == 1 else "need"
            raise ConfigError(str(project.file), "build.cgo",
                              f"{', '.join(verdict.refuse)} {verb} cgo (C code; with CGO off "
                              f"it fails to build or is a stub that fails at run time)",
                              hint="set build.cgo = true (and install gcc)")
        if verdict.unsure:
            notes.append(f"{', '.join(verdict.unsure)} use cgo when it is on and a pure-Go "
                         "fallback when it is off (as now): set build.cgo = true if the "
                         "fallback is not what you want")
            ui.warn(notes[-1])
    return packages


def _produced(root: Path, config: Config, graph: list[dict[str, Any]],
              stamp: gitinfo.Stamp) -> dict[str, bytes]:
    """Embedded and shipped files git does not track: what build.before made (or anything
    else not in the commit). Outside git there is no commit to compare with."""
    if stamp.commit == "unknown":
        return {}
    known = gitinfo.tracked(root)
    if known is None:
        return {}
    paths = set(golist.embedded_files(graph))
    for d in config.build.assets:
        paths.update(p for p in (root / d).rglob("*") if p.is_file())
    paths.update(root / f for f in config.build.files)
    out = {}
    real_root = root.resolve()
    for p in paths:
        try:
            rel = p.resolve().relative_to(real_root).as_posix()
        except ValueError:
            continue
        if rel not in known:
            out[rel] = p.read_bytes()
    return out


def _generated(root: Path, config: Config, graph: list[dict[str, Any]],
               stamp: gitinfo.Stamp) -> str:
    return gitinfo.generated_digest(_produced(root, config, graph, stamp))


def _upx(result: BuildResult, config: Config, root: Path) -> None:
    if not upx.available():
        result.notes.append("upx is not installed: binaries stay unpacked")
        ui.warn(result.notes[-1])
        return
    import platform

    here = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    for b in result.built:
        if b.target.os in upx.NEVER:
            b.notes.append(f"upx skipped: never for {b.target.os}")
            continue
        can_run = b.target.os == "linux" and b.target.arch == here
        packed = upx.pack(b, can_run=can_run, port_env=config.run.port_env,
                          health=config.run.health.path, workdir=root)
        b.size = b.path.stat().st_size
        b.notes.append(_describe(packed))


def _describe(p: upx.Packed) -> str:
    def start(m: upx.Measure) -> str:
        return f"{m.start_seconds * 1000:.0f} ms" if m.start_seconds is not None else "n/a"

    def rss(m: upx.Measure) -> str:
        return f"{m.rss_kib / 1024:.1f} MiB" if m.rss_kib is not None else "n/a"

    return (f"upx: size {p.before.size / 2**20:.1f} -> {p.after.size / 2**20:.1f} MiB, "
            f"start-up {start(p.before)} -> {start(p.after)}, "
            f"memory {rss(p.before)} -> {rss(p.after)}; upx -t ok")


def service_files(config: Config, root: Path, os_name: str = "linux") -> list[archive.Entry]:
    """The service definitions goship renders, for whoever installs a release by hand
    (deploy renders them on the host itself): Linux archives under service/, Windows zips
    the nssm/WinSW scripts at the top, beside the .exe they install."""
    from goship.render.inputs import RenderInput
    from goship.render.kinds import render_kind

    r = RenderInput(config=config, root=root)
    out = []
    if os_name == "windows":
        for name, text in render_kind("windows", r).items():
            name = "windows-service.md" if name == "README.md" else name
            out.append(archive.Entry(name, text.encode(), 0o644))
        return out
    for kind in ("systemd", "supervisord"):
        for name, text in render_kind(kind, r).items():
            out.append(archive.Entry(f"service/{kind}/{name}", text.encode(), 0o644))
    return out


@dataclass
class PackageResult:
    build: BuildResult
    packages: list[archive.Package]
    image: oci.Image | None


def run_package(project: Project, config: Config, *, image: bool = False,
                **build_args: object) -> PackageResult:
    result = run_build(project, config, **build_args)  # type: ignore[arg-type]
    go_version = gobuild.go_version()
    services = {os_name: service_files(config, project.root, os_name)
                for os_name in ("linux", "windows")}
    packages = [archive.package(config.app.name, project.root, result.plan, b,
                                config.build.assets, config.build.files, go_version,
                                services.get(b.target.os, []))
                for b in result.built]
    img = None
    if image:
        linux = [b for b in result.built if b.target.os == "linux"]
        if not linux:
            from goship.errors import UsageError

            raise UsageError("--image needs a linux target", hint="add --target linux/amd64")
        from goship.render.inputs import public_env

        assets = archive.collect(project.root, config.build.assets, config.build.files)
        inputs = [oci.ImageInput(
            app=config.app.name, arch=b.target.arch,
            binary=archive.Entry(b.path.name, b.path.read_bytes(), 0o755), assets=assets,
            port=config.run.base_port, port_env=config.run.port_env,
            # A secret (by name, or a URL with a password) never goes into an image: the
            # host passes it at run time from the release's 0600 env file.
            env=public_env(config)) for b in linux]
        out = result.plan.out_dir / f"{config.app.name}_{result.plan.stamp.safe_version}" \
                                    "_image.tar"
        img = oci.build_image(inputs, result.plan.stamp, out)
    return PackageResult(result, packages, img)
