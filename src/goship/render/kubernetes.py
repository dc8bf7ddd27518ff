"""Kubernetes manifests for when a fleet of VMs is outgrown: the same service, probes,
drain and canary, handed over to a cluster (goship does not grow its own)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from goship.build.oci import APP_DIR, DATA_DIR, UID
from goship.deploy.layout import COLORS
from goship.render.engine import render
from goship.render.inputs import RenderInput

if TYPE_CHECKING:
    from goship.config import Config

FILES = ("configmap", "files", "secret", "registry", "deployment", "service", "ingress", "hpa",
         "pdb")
CANARY_FILES = ("deployment", "service", "ingress")


def image_ref(r: RenderInput) -> str:
    image = r.config.docker.image or r.app
    last = image.rsplit("/", 1)[-1]
    return image if (":" in last or "@" in image) else f"{image}:{r.version}"


def startup_seconds(c: Config) -> int:
    """The startup probe's budget (1 s period): run.health.deadline, as on hosts."""
    return max(1, round(c.run.health.deadline))


def grace_seconds(c: Config) -> int:
    """The pods' terminationGracePeriodSeconds: the drain, the preStop pause, a margin."""
    return max(1, round(c.run.drain_timeout)) + c.kubernetes.pre_stop_seconds + 5


def config_name(app: str, env: dict[str, str]) -> str:
    """The ConfigMap's name: the app and a hash of its data. A new environment is a new
    ConfigMap, so the pod template changes (the pods roll) and each ReplicaSet keeps
    reading the environment it was made with: an undo or a rollback takes it back."""
    digest = hashlib.sha256(json.dumps(sorted(env.items())).encode()).hexdigest()
    return f"{app}-config-{digest[:10]}"


COLOR_LABEL = "goship.dev/color"


def pull_secret(c: Config) -> str | None:
    """The kubernetes.io/dockerconfigjson Secret the pods pull with, for a registry that
    needs a login (goship deploy applies it; its pods name it in imagePullSecrets)."""
    return f"{c.app.name}-registry" if c.docker.registry_username else None


def strategy(c: Config) -> str:
    """The release strategy on a cluster: deploy.strategy as written; its default
    (bluegreen, for hosts) means rolling here, so a fleet's config moves unchanged."""
    return c.deploy.strategy if "strategy" in c.deploy.model_fields_set else "rolling"


@dataclass(frozen=True)
class Shaped:
    """What a real service needs of its pod: its argv (run.args), the directories it
    writes (run.data_dirs, {data}) and the files it reads its port from
    (run.config_files), placeholders filled for this pod."""

    args: list[str]
    data: bool  # a data volume at /data
    data_dirs: list[str]  # each mounted from it at /app/DIR
    files: list[tuple[str, str, str]]  # (ConfigMap key, path under /app, content)
    files_name: str


def shaped(r: RenderInput, track: str, color: str | None) -> Shaped:
    from goship.deploy.runfiles import expand

    c = r.config
    values = {"port": str(c.run.base_port), "color": color or track, "release": r.version,
              "data": DATA_DIR}
    args = [expand(a, values) for a in c.run.args]
    files = []
    for i, path in enumerate(c.run.config_files):
        source = r.root / path
        text = source.read_text(encoding="utf-8") if source.is_file() else ""
        # a ConfigMap key takes [-._a-zA-Z0-9] only; the index keeps two names apart
        key = f"{i}-" + re.sub(r"[^-._a-zA-Z0-9]", "_", PurePosixPath(path).name)
        files.append((key, str(PurePosixPath(APP_DIR, path)), expand(text, values)))
    dirs = [d.rstrip("/") for d in c.run.data_dirs]
    uses_data = bool(dirs) or any("{data}" in a for a in c.run.args) or any(
        DATA_DIR in text for _, _, text in files)
    digest = hashlib.sha256(json.dumps(files).encode()).hexdigest()[:10]
    return Shaped(args, uses_data, dirs, files, f"{r.app}-files-{digest}")


def render_kubernetes(r: RenderInput, color: str | None = None) -> dict[str, str]:
    """Blue-green renders one color's Deployment (APP-COLOR), and the Service and HPA
    pointing at that color: `blue` unless the deploy names the other."""
    c = r.config
    if strategy(c) == "bluegreen":
        color = color or COLORS[0]
    elif color is not None:
        raise ValueError("a color is a blue-green render's")
    k = c.kubernetes
    secrets = r.secret_values()
    public = r.public_env()
    drain = max(1, round(c.run.drain_timeout))
    h = c.run.health
    values = dict(
        app=r.app, ns=k.namespace, k=k, version=r.version, image=image_ref(r), uid=UID,
        port=c.run.base_port, port_env=c.run.port_env, env=sorted(public.items()),
        config_name=config_name(r.app, public),
        # deploy names each version of the Secret (kube/plan.secret_name); a plain render
        # cannot, and a hash of the values in a name could be guessed offline.
        secret_name=r.secret_name or f"{r.app}-secrets", secret_versioned=bool(r.secret_name),
        secrets=sorted(secrets.items()), has_secrets=bool(secrets),
        masked=bool(secrets) and not r.show_secrets, health=h.path,
        probe_timeout=max(1, round(h.timeout)),
        startup_failures=startup_seconds(c),
        grace=grace_seconds(c), drain=drain,
        hosts=list(c.proxy.server_names), tls=c.proxy.tls.mode != "off",
        body_size=c.proxy.client_max_body_size, history=c.deploy.keep_releases,
        weight=int(c.canary.steps[0]), header="X-Goship-Track",
        color=color, color_label=COLOR_LABEL,
        stable_name=f"{r.app}-{color}" if color else r.app,
        pull_secret=pull_secret(c), registry_host=str(c.docker.registry or "").split("/")[0],
        registry_user=c.docker.registry_username, registry_auth=r.registry_auth,
    )
    out = {}
    stable = shaped(r, "stable", color)
    for name in FILES:
        if ((name == "secret" and not secrets) or (name == "files" and not stable.files)
                or (name == "registry" and not r.registry_auth)):
            continue
        out[f"{name}.yaml"] = render(f"k8s.{name}.yaml.j2", r.root, track="stable",
                                     shape=stable, data_claim=k.data_claim,
                                     app_dir=APP_DIR, data_dir=DATA_DIR, **values)
    for name in CANARY_FILES:
        out[f"canary/{name}.yaml"] = render(f"k8s.{name}.yaml.j2", r.root, track="canary",
                                            shape=shaped(r, "canary", None),
                                            data_claim=k.data_claim, app_dir=APP_DIR,
                                            data_dir=DATA_DIR, **values)
    if k.istio:
        out["istio/virtualservice.yaml"] = render("k8s.istio.yaml.j2", r.root, **values)
    return out
