"""Containers on a lab host: goship (`run.manager = "docker"`) against the articles' recipe
by hand (`docker save | ssh docker load`, `docker stop`, `docker run`), the same two images,
the same host, the same load through nginx, in turn. Writes its section into
docs/benchmarks.md (between markers, the rest of the file untouched).

    sudo .venv/bin/python -m bench.docker [--runs 3]
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.suite import (
    GOSHIP,
    LAB_KEY,
    LAB_KNOWN,
    Load,
    Series,
    example_project,
    git,
    release_rows,
    sh,
    ssh,
    standalone_args,
    timed,
    write_section,
)

TOML = """
[app]
name = "bench-dock"
[app.stamp]
"main.version" = "{version}"
[build]
assets = ["templates", "static"]
[run]
manager = "docker"
base_port = 9500
drain_timeout = 3.0
[run.health]
interval = 0.2
[proxy]
listen = 8087
[docker]
memory = "256m"
cpus = 1.0
[env.d1]
lab = 1
"""

# The articles' site: nginx on :8088 to the one container on 8098 (host network, as the
# lab's engine has no bridge; `-p` would add docker-proxy to the by-hand path).
HAND_SITE = """server {
    listen 8088;
    location / {
        proxy_pass http://127.0.0.1:8098;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
}
"""
HAND_RUN = ("docker run -d --name hand --network host -e PORT=8098 --memory 256m --cpus 1 "
            "--restart unless-stopped {image}")
BEGIN, END = "<!-- bench.docker begin -->", "<!-- bench.docker end -->"


class DockerBench:
    def __init__(self, runs: int) -> None:
        self.runs = runs
        self.tmp = Path(tempfile.mkdtemp(prefix="goship-bench-docker-"))
        self.project = example_project(self.tmp / "bench-dock", TOML)
        git(self.project, "tag", "v1.0.0")
        self.artifacts: dict[str, Any] = {}
        self.images: dict[str, Path] = {}
        self.refs: dict[str, str] = {}

    def setup(self) -> None:
        from goship.config import load
        from goship.deploy.docker import release_image
        from goship.deploy.engine import build_artifacts
        from goship.lab import hosts

        hosts.down()
        hosts.up(1, docker=True)
        for tag in ("v1.0.0", "v2.0.0"):
            if tag == "v2.0.0":
                (self.project / "static" / "bench.txt").write_text("v2\n")
                git(self.project, "add", ".")
                git(self.project, "commit", "-qm", "v2")
                git(self.project, "tag", "v2.0.0")
            project = load(self.project / "goship.toml")
            art = build_artifacts(project, project.env("d1"), {"amd64"}, allow_dirty=False,
                                  skip_checks=True)["amd64"]
            self.artifacts[tag] = art
            # The by-hand path ships the very same image, under its own tag.
            img = release_image("bench-dock", art.release_id, art.data)
            path = self.tmp / f"{tag}.tar"
            path.write_bytes(img.data)
            self.images[tag] = path
            self.refs[tag] = img.ref
        self.goship("v1.0.0")
        self.hand_load("v1.0.0")
        ssh(1, HAND_RUN.format(image=self.refs["v1.0.0"]))
        ssh(1, f"cat > /etc/nginx/conf.d/hand.conf <<'EOF'\n{HAND_SITE}EOF\n"
               "nginx -t -q && systemctl reload nginx")
        time.sleep(1)

    def goship(self, tag: str) -> None:
        from goship.config import load
        from goship.deploy.engine import Deployer, Outcome, env_values, fleet, release_built

        project = load(self.project / "goship.toml")
        env = project.env("d1")
        with fleet(env) as hosts:
            outcome = release_built(Deployer(project, env), hosts,
                                    {"amd64": self.artifacts[tag]}, env_values(project, env))
            assert isinstance(outcome, Outcome)  # noqa: S101 (not a dry run)
            if not outcome.ok:
                raise RuntimeError(outcome.failure)

    def hand_load(self, tag: str) -> None:
        """`docker save | ssh host docker load`: the image tar is already the save."""
        sh("sh", "-c", f"ssh -i {LAB_KEY} -o UserKnownHostsFile={LAB_KNOWN} -o BatchMode=yes "
                       f"root@10.78.0.11 docker load < {self.images[tag]}")

    def hand(self, tag: str) -> None:
        self.hand_load(tag)
        ssh(1, "docker stop hand >/dev/null && docker rm hand >/dev/null && " +
            HAND_RUN.format(image=self.refs[tag]))

    def close(self) -> None:
        from goship.lab import hosts

        hosts.down()
        shutil.rmtree(self.tmp, ignore_errors=True)


def measure(b: DockerBench) -> str:
    state = {"goship": "v1.0.0", "hand": "v1.0.0"}

    def flip(key: str) -> str:
        state[key] = "v2.0.0" if state[key] == "v1.0.0" else "v1.0.0"
        return state[key]

    methods = {
        "goship (run.manager = \"docker\")": ("http://10.78.0.11:8087/api/items",
                                              lambda: b.goship(flip("goship"))),
        "by hand: save piped to ssh load, stop, run": ("http://10.78.0.11:8088/api/items",
                                                lambda: b.hand(flip("hand"))),
    }
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in methods}
    for _ in range(b.runs):
        for name, (url, action) in methods.items():
            load = Load(url)
            seconds = timed(action)
            r = load.stop()
            results[name].append({**r, "seconds": seconds})
    rows = release_rows(results)
    # Rollback: goship inside the window (the old containers still run) against the same
    # recipe by hand with the previous image (already loaded: stop, run).
    back: dict[str, list[float]] = {"goship rollback (inside the window)": [],
                                    "by hand: stop, run the previous image": []}
    for _ in range(b.runs):
        back["goship rollback (inside the window)"].append(
            timed(lambda: sh(*GOSHIP, "rollback", "d1", cwd=b.project)))
        prev = flip("hand")
        back["by hand: stop, run the previous image"].append(timed(lambda prev=prev: ssh(
            1, "docker stop hand >/dev/null && docker rm hand >/dev/null && " +
            HAND_RUN.format(image=b.refs[prev]))))
    back_rows = [f"| {k} | {Series(v).show()} |" for k, v in back.items()]
    engine = ssh(1, "docker info --format '{{.ServerVersion}}, {{.Driver}}, cgroup "
                    "v{{.CgroupVersion}}'").strip()
    return "\n".join([
        BEGIN,
        "## Containers on hosts",
        "",
        f"`python -m bench.docker` on {time.strftime('%Y-%m-%d')}, {b.runs} run(s) each, in "
        f"turn, on lab host h1 with Docker {engine} (`lab up --docker`). The same two images "
        "(goship's, made from the release archive) alternate. goship: load the image over "
        "SSH unless the host has it, start the other color's container, health gate, Lua "
        "switch, old color kept warm. By hand, the articles' recipe: `docker save | ssh "
        "docker load`, `docker stop`, `docker rm`, `docker run` on the one port behind "
        "nginx (host network in both: the lab's engine has no bridge). Load: wrk, 2 "
        "threads, 16 connections through nginx, from 1 s before to 1 s after. Failed = "
        "connection errors + non-2xx answers. Wall time: the release command alone.",
        "",
        "| method | failed requests | requests during the run | wall time |",
        "|---|---|---|---|",
        *rows,
        "",
        "| rollback | wall time |",
        "|---|---|",
        *back_rows,
        "",
        END,
    ])


def main() -> None:
    args = standalone_args(__doc__, "docker", 3)
    b = DockerBench(args.runs)
    try:
        b.setup()
        text = measure(b)
    finally:
        b.close()
    write_section(args.out, BEGIN, END, text)
    print(text)


if __name__ == "__main__":
    main()
