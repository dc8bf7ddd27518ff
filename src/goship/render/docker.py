"""Dockerfile (multi-stage: a pinned golang builder, then scratch, distroless or alpine),
its .dockerignore, and the tiny health probe that images without a shell need."""

from __future__ import annotations

from importlib.resources import files

from goship import envquote
from goship.build.gobuild import BUILD_FLAGS, stamp_ldflags
from goship.build.oci import UID
from goship.errors import ConfigError
from goship.render.engine import render
from goship.render.inputs import RenderInput, go_version

PROBE_DIR = ".goship-probe"  # a dot directory: `go build ./...` and `go vet ./...` skip it
BASES = {
    "scratch": "scratch",
    "distroless": "gcr.io/distroless/static-debian12:nonroot",
    "alpine": "alpine:3.20",
}


def probe_source() -> str:
    return (files("goship") / "templates" / "probe" / "main.go").read_text()


def build_ldflags(stamp_vars: dict[str, str]) -> str:
    return stamp_ldflags(stamp_vars, "${VERSION}", "${COMMIT}", "${BUILD_TIME}",
                         ["-s", "-w", "-buildid="])


def image_env(r: RenderInput) -> list[tuple[str, str]]:
    """run.env for the Dockerfile's ENV (the template quotes: `dockerfile_env`); secrets
    are not among them (an image is readable by whoever can pull it): they are set when
    the container runs."""
    out = []
    for k, v in sorted(r.public_env().items()):
        try:
            envquote.dockerfile(v)  # a value it cannot carry: said here, with the key
            out.append((k, v))
        except ValueError as e:
            raise ConfigError("goship.toml", f"run.env.{k}", f"{e}",
                              hint="pass it at run time (docker run -e / --env-file), "
                              "or remove the line break") from None
    return out


def render_dockerfile(r: RenderInput) -> dict[str, str]:
    c = r.config
    go = go_version(r.root, c)
    go_image = c.docker.go_image or f"golang:{go}-bookworm"
    main = "." if c.app.main == "." else f"./{c.app.main}"
    module_dir = c.app.module_dir.rstrip("/")
    values = dict(
        app=r.app, binary=c.app.binary_name, go_image=go_image, base=c.docker.base,
        base_image=BASES[c.docker.base], uid=UID, port=c.run.base_port,
        port_env=c.run.port_env, health=c.run.health.path, env=image_env(r),
        runtime_env=sorted(r.secret_env()),
        assets=[*c.build.assets, *c.build.files], main=main, module_dir=module_dir,
        flags=" ".join(BUILD_FLAGS), ldflags=build_ldflags(c.app.stamp),
        tags=",".join(c.build.tags), cgo=c.build.cgo, probe_dir=PROBE_DIR,
        version=r.version, dq=envquote.dockerfile,  # dq: for overrides written before
        timeout=max(1, round(c.run.health.timeout)),
        start=max(1, round(c.run.health.deadline)), drain=max(1, round(c.run.drain_timeout)),
    )
    return {
        "Dockerfile": render("Dockerfile.j2", r.root, **values),
        ".dockerignore": render("dockerignore.j2", r.root, **values),
        f"{PROBE_DIR}/main.go": probe_source(),
    }
