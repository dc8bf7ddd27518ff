"""goship build | goship package"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from goship.cli.common import json_option, load_project
from goship.ui import ui


def build_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed([
        click.option("--target", "targets", multiple=True, metavar="OS/ARCH",
                     help="Build this target instead of build.targets (repeatable)."),
        click.option("--env", "env_name", help="Use [env.ENV]'s overrides of the config."),
        click.option("--allow-dirty", is_flag=True,
                     help="Build uncommitted changes; the version then ends in -dirty."),
        click.option("--fix", is_flag=True,
                     help="Run `go mod tidy` when go.mod is untidy (the tree is then dirty: "
                     "commit, or add --allow-dirty)."),
        click.option("--vet", is_flag=True, help="Also run `go vet ./...`."),
        click.option("--skip-checks", is_flag=True,
                     help="Skip the tidy and verify checks (faster local iterations)."),
        json_option,
    ]):
        f = opt(f)
    return f


def _args(ctx: click.Context, env_name: str | None, targets: tuple[str, ...],
          allow_dirty: bool, fix: bool, vet: bool, skip_checks: bool) -> tuple[Any, Any, dict[
              str, Any]]:
    project = load_project(ctx)
    config = project.env(env_name).config if env_name else project.base
    return project, config, {"targets": list(targets) or None, "allow_dirty": allow_dirty,
                             "fix": fix, "vet": vet, "checks": not skip_checks}


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


@click.command()
@build_options
@click.pass_context
def build(ctx: click.Context, targets: tuple[str, ...], env_name: str | None,
          allow_dirty: bool, fix: bool, vet: bool, skip_checks: bool, as_json: bool) -> None:
    """Cross-compile the service: reproducible (-trimpath, -mod=readonly or vendor, CGO off
    unless build.cgo), stripped, version-stamped with -X from git (build date = commit time,
    never the clock).

    Checks go.mod/go.sum are tidy and verified first, runs build.before, checks the build
    graph (//go:embed patterns, cgo dependencies). All targets build in parallel into
    build.out_dir/VERSION/OS_ARCH; a failed build leaves nothing behind. -v prints the
    exact go command.

    \b
    Example:
      goship build
      goship build --target linux/amd64 --target linux/arm64 --allow-dirty
    """
    from goship.build.pipeline import run_build

    project, config, kw = _args(ctx, env_name, targets, allow_dirty, fix, vet, skip_checks)
    result = run_build(project, config, **kw)
    if as_json:
        ui.out(json.dumps({
            "version": result.plan.stamp.version, "commit": result.plan.stamp.commit,
            "build_time": result.plan.stamp.build_time, "ldflags": result.plan.ldflags,
            "flags": list(result.plan.flags), "generated": list(result.plan.generated),
            "artifacts": [{"target": str(b.target), "path": str(b.path), "size": b.size,
                           "cgo": result.plan.toolchain(b.target).how,
                           "sha256": b.sha256, "seconds": round(b.seconds, 2),
                           "notes": b.notes} for b in result.built],
            "notes": result.notes}, indent=2))
        return
    for b in result.built:
        ui.out(f"{b.target}  {_rel(b.path)}  {b.size / 2**20:.1f} MiB  "
               f"sha256:{b.sha256[:16]}  ({b.seconds:.1f}s)")
        for note in b.notes:
            ui.info(f"  {note}")


@click.command()
@build_options
@click.option("--image", is_flag=True,
              help="Also write an OCI image tar for the linux targets (no daemon needed).")
@click.pass_context
def package(ctx: click.Context, targets: tuple[str, ...], env_name: str | None,
            allow_dirty: bool, fix: bool, vet: bool, skip_checks: bool, as_json: bool,
            image: bool) -> None:
    """Build, then write one reproducible release archive per target (tar.gz; zip for
    Windows) with the binary, assets, manifest.json and SHA256SUMS; with --image, an OCI
    image that `docker load` accepts.

    \b
    Example:
      goship package --image
      docker load -i dist/v1.2.0/shop_v1.2.0_image.tar
    """
    from goship.build.pipeline import run_package

    project, config, kw = _args(ctx, env_name, targets, allow_dirty, fix, vet, skip_checks)
    result = run_package(project, config, image=image, **kw)
    if as_json:
        ui.out(json.dumps({
            "version": result.build.plan.stamp.version,
            "packages": [{"target": p.target, "path": str(p.path), "release_id": p.release_id,
                          "sha256": p.sha256} for p in result.packages],
            "image": None if result.image is None else {
                "path": str(result.image.path), "tags": result.image.tags,
                "digests": result.image.digests},
        }, indent=2))
        return
    for p in result.packages:
        ui.out(f"{p.target}  {_rel(p.path)}  release {p.release_id}  sha256:{p.sha256[:16]}")
    if result.image is not None:
        ui.out(f"image  {_rel(result.image.path)}  {', '.join(result.image.tags)}")
        for platform, digest in result.image.digests.items():
            ui.info(f"  {platform} {digest}")
