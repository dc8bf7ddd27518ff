"""`goship doctor`: is this machine, and every host of an environment, ready?"""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from goship.config import Environment, Project
from goship.errors import GoshipError
from goship.facts import HostFacts, gather
from goship.transport import Transport

Level = Literal["ok", "warn", "fail"]
MIN_FREE_KIB = 1024 * 1024  # 1 GiB: a few releases and their logs


@dataclass(frozen=True)
class Check:
    where: str
    what: str
    level: Level
    detail: str
    fix: str = ""

    def line(self) -> str:
        tag = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}[self.level]
        fix = f" -> {self.fix}" if self.fix and self.level != "ok" else ""
        return f"{tag} {self.where}: {self.what}: {self.detail}{fix}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


GO_VERSION = re.compile(r"go(\d+)\.(\d+)(?:\.(\d+))?")


def parse_go_version(text: str) -> tuple[int, int, int] | None:
    m = GO_VERSION.search(text)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def version_tuple(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.split(".")[:3] if p.isdigit()]
    parts += [0] * (3 - len(parts))
    return parts[0], parts[1], parts[2]


def _tool_version(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    return (res.stdout + res.stderr).strip().splitlines()[0] if (res.stdout + res.stderr) else ""


def local_checks(project: Project | None) -> list[Check]:
    checks: list[Check] = []
    go = _tool_version(["go", "version"])
    want = None
    if project is not None:
        gomod = project.root / project.base.app.module_dir / "go.mod"
        if gomod.is_file():
            m = re.search(r"^go\s+(\S+)", gomod.read_text(encoding="utf-8"), re.M)
            want = m.group(1) if m else None
    if go is None:
        checks.append(Check("local", "go", "fail", "not found on PATH",
                            "install Go from https://go.dev/dl and put it on PATH"))
    else:
        have = parse_go_version(go)
        if want and have and have < version_tuple(want):
            checks.append(Check("local", "go", "warn", f"{go}; go.mod wants go {want}",
                                "upgrade Go, or let GOTOOLCHAIN fetch it (needs the network)"))
        else:
            extra = f" (go.mod wants {want})" if want else ""
            checks.append(Check("local", "go", "ok", f"{go}{extra}"))
    for tool, argv, fix in (
        ("git", ["git", "--version"], "install git (versions are stamped from git describe)"),
        ("ssh", ["ssh", "-V"], "install openssh-client to deploy to hosts"),
    ):
        v = _tool_version(argv)
        checks.append(Check("local", tool, "ok", v) if v is not None
                      else Check("local", tool, "warn", "not found on PATH", fix))
    if project is not None and project.base.build.cgo and go is not None:
        checks += cgo_checks(project)
    return checks


def cgo_checks(project: Project) -> list[Check]:
    """build.cgo: the C compiler each target will use, or why none can build it (the same
    decision goship build makes before it starts)."""
    from goship.build import cgo
    from goship.build.gobuild import find_zig, host_target

    build = project.base.build
    host, zig = host_target(), find_zig()
    out = []
    for target in build.targets:
        choice = cgo.choose(target, cgo=True, host=host, cc=build.cc, which=shutil.which,
                            zig=zig)
        if isinstance(choice, cgo.Refusal):
            out.append(Check("local", f"cgo {target}", "fail", choice.message, choice.hint))
            continue
        version = None
        if not choice.how.startswith("zig"):
            version = _tool_version([choice.cc[0] if choice.cc else "cc", "--version"])
        detail = choice.how + (f" ({version})" if version else "")
        out.append(Check("local", f"cgo {target}", "ok", detail))
    return out


def host_checks(t: Transport, env: Environment, consul_token: str | None = None
                ) -> list[Check]:
    cfg = env.config
    where = t.name
    try:
        facts = gather(t, cfg.deploy.base_path, cfg.service_user, full=True)
    except GoshipError as e:
        return [Check(where, "reachable", "fail", e.message,
                      "check the address, the ssh key (ssh-add -l) and known_hosts")]
    out = [Check(where, "reachable", "ok", "ok"), *judge(where, facts, env)]
    if cfg.run.manager == "docker" and facts.docker:
        from goship.deploy.docker import engine_facts

        out.append(judge_engine(where, engine_facts(t)))
    if cfg.consul.enabled:
        from goship.deploy import consul

        answers = [r.stdout if r.ok else None
                   for r in t.run_all(consul.agent_queries(cfg.consul.agent, consul_token),
                                      timeout=15)]
        level, detail, fix = consul.judge_agent(cfg.consul.agent, *answers)
        out.append(Check(where, "consul", level, detail, fix))
    return out


def judge_engine(where: str, e: dict[str, str] | None) -> Check:
    """Pure: the Docker engine's facts (deploy.docker.engine_facts) as one check."""
    if e is None:
        return Check(where, "docker", "fail", "the engine does not answer (`docker info`)",
                     "systemctl start docker; `journalctl -u docker` says why it stopped")
    free = int(e["free_kib"]) if e["free_kib"].isdigit() else None
    space = f"{free / 1024 / 1024:.1f} GiB free" if free is not None else "free space unknown"
    detail = (f"engine {e['version']}, storage {e['driver']}, cgroup v{e['cgroup']} "
              f"({e['cgroup_driver']}), {space} in {e['root']}")
    if free is not None and free < MIN_FREE_KIB:
        return Check(where, "docker", "fail", detail, "free at least 1 GiB in Docker's root "
                     "(docker image prune)")
    return Check(where, "docker", "ok", detail)


def judge(where: str, f: HostFacts, env: Environment) -> list[Check]:
    """Pure: what the facts mean for this environment."""
    cfg = env.config
    out: list[Check] = []
    wanted_arch = {t.split("/")[1] for t in cfg.build.targets if t.startswith("linux/")}
    if f.os != "linux":
        out.append(Check(where, "os", "fail", f"{f.os or 'unknown'}; goship deploys to Linux",
                         "deploy to Linux hosts"))
    elif wanted_arch and f.arch not in wanted_arch:
        out.append(Check(where, "os", "fail", f"linux/{f.arch}, but build.targets has no "
                         f"linux/{f.arch}", f'add "linux/{f.arch}" to build.targets'))
    else:
        out.append(Check(where, "os", "ok", f"linux/{f.arch}"))
    manager = cfg.run.manager
    if f.systemd_pid1:
        out.append(Check(where, "init", "ok", f"systemd is PID 1 ({f.systemd_state or '?'})"))
    elif manager == "systemd":
        out.append(Check(where, "init", "fail", f"PID 1 is {f.pid1 or 'unknown'}, not systemd",
                         'set run.manager = "supervisord" (or "auto")'))
    else:
        out.append(Check(where, "init", "ok", f"PID 1 is {f.pid1 or 'unknown'}; supervisord "
                         "will manage the service"))
    if f.nginx_version:
        lua = "with Lua" if f.nginx_lua else "no Lua (canary weights change by reload)"
        out.append(Check(where, "nginx", "ok", f"{f.nginx_version}, {lua}"))
    else:
        out.append(Check(where, "nginx", "fail", "not installed",
                         "apt-get install nginx (or your distribution's package)"))
    if f.free_kib is None:
        out.append(Check(where, "disk", "warn", f"cannot read free space at "
                         f"{cfg.deploy.base_path}"))
    else:
        gib = f.free_kib / 1024 / 1024
        level: Level = "ok" if f.free_kib >= MIN_FREE_KIB else "fail"
        out.append(Check(where, "disk", level, f"{gib:.1f} GiB free at {f.free_path} "
                         f"(for {cfg.deploy.base_path})", "free at least 1 GiB"))
    user = cfg.service_user
    if env.target.kind == "local":
        out.append(Check(where, "user", "ok", "local mode: the service runs as the user who "
                         "deploys"))
    else:
        out.append(Check(where, "user", "ok", f"{user} exists" if f.user_exists else
                         f"{user} does not exist yet; goship setup creates it"))
    if f.privilege == "none" and env.target.kind == "local":
        out.append(Check(where, "privilege", "ok", "not root: goship runs its own nginx and "
                         "supervisord under the deploy directory"))
    elif f.privilege == "none":
        out.append(Check(where, "privilege", "fail", "not root and no passwordless sudo",
                         "log in as root or allow this user `sudo -n` (NOPASSWD)"))
    else:
        out.append(Check(where, "privilege", "ok", f.privilege))
    if manager == "supervisord" and not f.supervisord and not f.systemd_pid1:
        out.append(Check(where, "supervisord", "warn", "not installed",
                         "goship setup installs it; or apt-get install supervisor"))
    if manager == "docker" and not f.docker:
        out.append(Check(where, "docker", "fail", "not installed", "install docker.io"))
    out.append(_ports_check(where, f, env))
    return out


def _ports_check(where: str, f: HostFacts, env: Environment) -> Check:
    """Ports of the app's range that other processes hold: deploy moves a color off them
    (or refuses explicit run.ports), but a user should know before."""
    from goship.deploy.layout import default_port_map
    from goship.deploy.ports import held_in_range

    if f.listeners is None:
        return Check(where, "ports", "warn", "cannot list listening ports (no `ss`)",
                     "apt-get install iproute2")
    held = held_in_range(env.config, f.listeners, default_port_map(env.config))
    if not held:
        return Check(where, "ports", "ok", "the app's ports are free")
    fix = ("choose other run.ports" if env.config.run.ports is not None else
           "deploy moves the color to free ports and records them; or set run.base_port")
    return Check(where, "ports", "fail" if env.config.run.ports is not None else "warn",
                 "; ".join(held), fix)


def registry_check(env: Environment) -> Check:
    """[docker] registry from this machine (where goship pushes): reachable, and the login
    accepted when it needs one."""
    from goship.deploy.registry import Registry, check_login, credentials

    d = env.config.docker
    try:
        reg = Registry.parse(str(d.registry), d.registry_insecure, credentials(d))
        return Check("local", "registry", "ok", check_login(reg))
    except GoshipError as e:
        return Check("local", "registry", "fail", e.message, e.hint or "")


def run_doctor(project: Project | None, env: Environment | None) -> list[Check]:
    checks = local_checks(project)
    if env is not None and env.config.docker.registry:
        checks.append(registry_check(env))
    if env is not None:
        from goship.deploy import consul
        from goship.targets import transports

        token = consul.token_for(project, env)
        hosts = transports(env)
        try:
            with ThreadPoolExecutor(max_workers=env.config.deploy.concurrency) as pool:
                for result in pool.map(lambda t: host_checks(t, env, token), hosts):
                    checks.extend(result)
        finally:
            for t in hosts:
                t.close()
    return checks


def project_or_none(path: Path | None) -> Project | None:
    from goship.config import find_config, load

    if path is not None:
        return load(path)
    try:
        return load(find_config())
    except GoshipError:
        return None
