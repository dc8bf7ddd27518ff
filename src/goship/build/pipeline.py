"""build and package as the CLI (and later deploy) run them: config in, artifacts out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from goship.build import archive, gitinfo, gobuild, oci, upx
from goship.build.gobuild import Built, Plan
from goship.config import Config, Project
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
    plan = gobuild.make_plan(config, root, inputs, stamp)
    done = gobuild.check_module(plan.module_dir, fix=fix, vet=vet) if checks else []
    for line in done:
        ui.debug(line)
    ui.info(f"building {plan.binary} {stamp.version} for "
            f"{', '.join(str(t) for t in plan.targets)}")
    built = gobuild.build(plan)
    result = BuildResult(plan, built, done)
    if config.build.upx:
        _upx(result, config, root)
    return result


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
        assets = archive.collect(project.root, config.build.assets, config.build.files)
        inputs = [oci.ImageInput(
            app=config.app.name, arch=b.target.arch,
            binary=archive.Entry(b.path.name, b.path.read_bytes(), 0o755), assets=assets,
            port=config.run.base_port, port_env=config.run.port_env,
            env=dict(config.run.env)) for b in linux]
        out = result.plan.out_dir / f"{config.app.name}_{result.plan.stamp.safe_version}" \
                                    "_image.tar"
        img = oci.build_image(inputs, result.plan.stamp, out)
    return PackageResult(result, packages, img)
