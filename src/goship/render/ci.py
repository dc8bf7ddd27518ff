"""A GitHub Actions workflow: tests, a build per target, packages, a release on tags and a
deploy to a protected environment whose secrets hold the SSH key."""

from __future__ import annotations

from goship import __version__
from goship.render.engine import render
from goship.render.inputs import RenderInput, go_version


def deploy_env(r: RenderInput) -> str:
    if r.config.ci.deploy_env:
        return r.config.ci.deploy_env
    return r.env or "production"


def render_ci(r: RenderInput) -> dict[str, str]:
    c = r.config
    module_dir = c.app.module_dir.rstrip("/")
    return {f".github/workflows/{r.app}.yml": render(
        "ci.github.yml.j2", r.root, app=r.app, go=go_version(r.root, c),
        targets=list(c.build.targets), branch=c.ci.branch, env=deploy_env(r),
        goship=__version__, module_dir=module_dir, out_dir=c.build.out_dir)}
