"""Containers on hosts (`run.manager = "docker"`): each color's instances are containers of
the release's image, on the color's ports, behind the same nginx switch as systemd hosts.

The image is goship's own (daemonless, see build/oci.py), made from the release archive
itself, so a release id names one image: /app holds exactly what the archive holds. It
streams over the transport into `docker load`, skipped when the host already has that
image id. No registry is needed.

Containers use the host's network: each binds its color's port itself, so the port
preflight sees the instance's own process (its cgroup is the container, not a unit), no
proxy process or NAT sits between nginx and the service, and the health gate asks the same
address nginx does. Everything else a container gives is kept: read-only root with a tmpfs
/tmp, no capabilities, no-new-privileges, a non-root user, memory/CPU/PID limits.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shlex
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from goship.build.archive import Entry
from goship.build.oci import APP_DIR, DATA_DIR
from goship.command import Cmd
from goship.config import Config
from goship.deploy.layout import COLORS, Paths, PortMap
from goship.deploy.runfiles import data_root, expand, workdir
from goship.deploy.scripts import (
    STANDBY_CANCEL,
    STANDBY_SLEEPER,
    SYSTEMD_CANCEL,
    SYSTEMD_SCHEDULE,
)
from goship.deploy.services import Services, _failed
from goship.errors import ApplyError, GoshipError, UsageError
from goship.transport.base import Transport

LABEL = "io.goship"


def first_line(text: str) -> str:
    """docker's own error line: the first one (the last is "Run 'docker run --help'")."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()
             and not ln.strip().startswith(("See 'docker", "Run 'docker"))]
    return lines[0] if lines else "no output"


def image_ref(app: str, rid: str) -> str:
    return f"goship-{app}:{rid}"


def container_name(app: str, color: str, port: int) -> str:
    return f"{app}-{color}-{port}"


# ---- the image, from the release archive ----------------------------------------------
@dataclass(frozen=True)
class ReleaseImage:
    ref: str
    id: str  # sha256:<config digest>: what `docker image inspect` calls the image's Id
    data: bytes  # a tar `docker load` accepts (also an OCI image layout)


_cache: dict[tuple[str, str], ReleaseImage] = {}
_cache_lock = threading.Lock()


def release_image(app: str, rid: str, archive: bytes) -> ReleaseImage:
    """The release archive (tar.gz: binary, assets, manifest.json) as an image; built once
    per process for every host that needs it. Pure: same archive, same image id."""
    key = (app, hashlib.sha256(archive).hexdigest())
    with _cache_lock:
        if key not in _cache:
            _cache[key] = _build(app, rid, archive)
        return _cache[key]


def _build(app: str, rid: str, archive: bytes) -> ReleaseImage:
    from goship.build.gitinfo import Stamp
    from goship.build.oci import ImageInput, build_image

    entries: dict[str, Entry] = {}
    epoch = 0
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for m in tar.getmembers():
            epoch = max(epoch, int(m.mtime))
            f = tar.extractfile(m) if m.isfile() else None
            if f is not None:
                entries[m.name] = Entry(m.name, f.read(), m.mode & 0o777)
    if "manifest.json" not in entries:
        raise ApplyError(f"release {rid} has no manifest.json: not a goship release archive")
    meta = json.loads(entries["manifest.json"].data)
    binary = entries.pop(str(meta.get("binary", "")), None)
    if binary is None:
        raise ApplyError(f"release {rid}: its binary {meta.get('binary')!r} is not in the "
                         f"archive")
    arch = str(meta.get("target", "linux/amd64")).split("/")[-1]
    build = meta.get("build") if isinstance(meta.get("build"), dict) else {}
    system = c_libraries(binary.data, arch, rid) if build.get("cgo") else ()
    stamp = Stamp(str(meta.get("version", rid)), str(meta.get("commit", "unknown")), epoch,
                  False)
    # No environment in the image: it comes from the release's kept env file at run time.
    inp = ImageInput(app=app, arch=arch, binary=binary,
                     assets=sorted(entries.values(), key=lambda e: e.path), port=8080,
                     port_env="PORT", env={}, system=system)
    with tempfile.TemporaryDirectory(prefix="goship-image-") as tmp:
        out = Path(tmp) / "image.tar"
        build_image([inp], stamp, out)
        data = out.read_bytes()
    ref = image_ref(app, rid)
    data, config = _retag(data, ref)
    return ReleaseImage(ref, f"sha256:{config}", data)


LDD_LINE = re.compile(r"^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)$")


def parse_ldd(text: str) -> list[str]:
    """The absolute paths `ldd` resolved (libraries and the loader), in order."""
    return [m.group(1) for ln in text.splitlines() if (m := LDD_LINE.match(ln))]


def c_libraries(binary: bytes, arch: str, rid: str) -> tuple[Entry, ...]:
    """A cgo binary links the C library dynamically: its libraries and loader, from the
    machine that built it (the same ones it was linked against), go into the image at
    their paths. Only for this machine's own architecture, where `ldd` can tell."""
    import platform
    import subprocess

    native = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(),
                                                          platform.machine())
    if arch != native:
        raise ApplyError(f"release {rid} is a cgo build for linux/{arch}: its C libraries "
                         f"can only be read on a linux/{arch} machine",
                         hint="deploy it from a machine of that architecture, or build "
                              "without cgo")
    with tempfile.TemporaryDirectory(prefix="goship-ldd-") as tmp:
        exe = Path(tmp) / "binary"
        exe.write_bytes(binary)
        exe.chmod(0o755)
        res = subprocess.run(["ldd", str(exe)], capture_output=True, text=True, check=False)
    if "not a dynamic executable" in res.stdout + res.stderr:
        return ()
    if res.returncode != 0:
        raise ApplyError(f"release {rid}: ldd could not read its binary: "
                         f"{(res.stderr or res.stdout).strip()}")
    return tuple(Entry(p.lstrip("/"), Path(p).read_bytes(), 0o755) for p in parse_ldd(res.stdout))


def _retag(data: bytes, ref: str) -> tuple[bytes, str]:
    """The image tar with `ref` as its only tag (docker load tags it so); and its config
    digest. Members keep their order and metadata."""
    out = io.BytesIO()
    config = ""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as src, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for m in src.getmembers():
            body = src.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
            if m.name == "manifest.json" and body is not None:
                manifest = json.loads(body)
                manifest[0]["RepoTags"] = [ref]
                config = str(manifest[0]["Config"]).rsplit("/", 1)[-1]
                body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
                m.size = len(body)
            dst.addfile(m, io.BytesIO(body) if body is not None else None)
    return out.getvalue(), config


# ---- env file ---------------------------------------------------------------------------
def env_text(env: dict[str, str]) -> str:
    """`docker run --env-file` syntax: KEY=VALUE taken literally to the end of the line (no
    quotes, no escapes), so a value cannot hold a newline."""
    bad = [k for k, v in env.items() if "\n" in v or "\r" in v or "\x00" in v]
    if bad:
        raise UsageError(f"run.env: {bad[0]} holds a newline, which a Docker env file "
                         f"cannot carry", hint="put the value on one line (or base64 it)")
    return "".join(f"{k}={v}\n" for k, v in sorted(env.items()))


# ---- docker run ---------------------------------------------------------------------------
def run_argv(config: Config, paths: Paths, *, color: str, port: int, release: str,
             env_file: str, user: str | None) -> list[str]:
    """`docker run` for one instance: pure, so it is tested as data."""
    app = config.app.name
    d = config.docker
    argv = ["docker", "run", "--detach", "--name", container_name(app, color, port),
            "--label", f"{LABEL}.app={app}", "--label", f"{LABEL}.color={color}",
            "--label", f"{LABEL}.port={port}", "--label", f"{LABEL}.release={release}",
            "--network", "host", "--env-file", env_file,
            "--env", f"{config.run.port_env}={port}",
            "--restart", d.restart if d.restart != "on-failure" or d.restart_max is None
            else f"on-failure:{d.restart_max}",
            "--stop-timeout", str(max(1, int(config.run.drain_timeout + 0.999))),
            "--log-driver", "json-file", "--log-opt", f"max-size={d.log_max_size}",
            "--log-opt", "max-file=3"]
    if d.read_only:
        argv += ["--read-only", "--tmpfs", f"/tmp:rw,nosuid,nodev,size={d.tmpfs_size}"]  # noqa: S108
    if d.cap_drop_all:
        argv += ["--cap-drop", "ALL"]
    argv += ["--security-opt", "no-new-privileges"]
    if user:
        argv += ["--user", user]
    if d.memory:
        argv += ["--memory", d.memory]
    if d.cpus is not None:
        argv += ["--cpus", f"{d.cpus:g}"]
    if d.pids_limit is not None:
        argv += ["--pids-limit", str(d.pids_limit)]
    # nofile: the engine's own default (Debian's: 1048576) unless run.limit_nofile is set;
    # a container cannot raise a limit past the engine's hard limit.
    n = config.run.limit_nofile
    ulimits = {**({"nofile": f"{n}:{n}"} if "limit_nofile" in config.run.model_fields_set
                  else {}), **d.ulimits}
    for name, value in sorted(ulimits.items()):
        argv += ["--ulimit", f"{name}={value}"]
    root = data_root(paths)
    argv += ["--volume", f"{root}:{DATA_DIR}"]
    for sub in config.run.data_dirs:
        sub = sub.rstrip("/")
        argv += ["--volume", f"{root}/{sub}:{PurePosixPath(APP_DIR, sub)}"]
    if config.run.config_files:
        farm = workdir(paths, color, port)
        for f in config.run.config_files:
            argv += ["--volume", f"{farm}/{f}:{PurePosixPath(APP_DIR, f)}:ro"]
    values = {"port": str(port), "color": color, "release": release,
              "data": DATA_DIR}
    argv += [image_ref(app, release), *(expand(a, values) for a in config.run.args)]
    return argv


# Replace what runs under a name: a stopped or stale container of that name goes first.
RUN = r"""
# $1 name, then the docker run argv
name=$1; shift
docker rm -f "$name" >/dev/null 2>&1
exec "$@"
"""

STOP = r"""
# $1 seconds to wait for a graceful stop, then container names: stopped, then removed
t=$1; shift
[ $# -gt 0 ] || exit 0
docker stop --time "$t" "$@" >/dev/null 2>&1
docker rm -f "$@" >/dev/null 2>&1
exit 0
"""

# The host stops a warm standby by itself: a systemd timer where systemd runs, else a
# detached sleeper (as on supervisord hosts).
# State as JSON, last: engines before 23 fail a template that names a missing key
# (.State.Health of an image without HEALTHCHECK), and an error string may hold "|".
INSPECT_FORMAT = "{{.Name}}|{{.RestartCount}}|{{.Id}}|{{.Config.Image}}|{{json .State}}"

PS_FORMAT = '{{.Label "io.goship.color"}} {{.Label "io.goship.port"}} {{.State}}'


@dataclass(frozen=True)
class Container:
    name: str
    status: str  # running, restarting, exited, created...
    pid: int
    restarts: int
    id: str
    image: str
    health: str  # healthy, unhealthy, starting, none (the image has no HEALTHCHECK)
    exit_code: int


def parse_inspect(text: str) -> dict[str, Container]:
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|", 4)
        if len(parts) != 5:
            continue
        name, restarts, cid, image, raw = parts
        try:
            state = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if not isinstance(state, dict):
            continue
        health = state.get("Health")
        name = name.lstrip("/")
        out[name] = Container(
            name, str(state.get("Status", "")), int(state.get("Pid") or 0),
            int(restarts) if restarts.isdigit() else 0, cid, image,
            str(health.get("Status", "none")) if isinstance(health, dict) else "none",
            int(state.get("ExitCode") or 0))
    return out


def parse_ps(text: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {c: [] for c in COLORS}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] in out and parts[1].isdigit() and \
                parts[2] in ("running", "restarting"):
            out[parts[0]].append(int(parts[1]))
    return {c: sorted(set(v)) for c, v in out.items()}


class DockerServices(Services):
    """A color's instances are containers named app-color-port, labelled io.goship.*."""

    name = "docker"

    def __init__(self, t: Transport, config: Config, paths: Paths, *, systemd: bool,
                 port_map: PortMap | None = None) -> None:
        super().__init__(t, config, paths, port_map)
        self.systemd = systemd
        self.releases: dict[str, str] = {}
        self._user: str | None = None

    def names(self, color: str, ports: list[int] | None = None) -> list[str]:
        return [container_name(self.config.app.name, color, p)
                for p in (self.ports(color) if ports is None else ports)]

    # ---- the engine and images ----------------------------------------------------------
    def check_engine(self) -> str:
        """The engine's version; a clear error when it does not answer."""
        res = self.t.run(Cmd.of("docker", "version", "--format", "{{.Server.Version}}"),
                         timeout=30)
        if not res.ok or not res.stdout.strip():
            said = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no answer"]
            raise ApplyError(f"{self.t.name}: the Docker engine does not answer: {said[0]}",
                             hint="start it (systemctl start docker) and check "
                                  "`docker info` on the host")
        return res.stdout.strip()

    def image_id(self, rid: str) -> str | None:
        res = self.t.run(Cmd.of("docker", "image", "inspect", "--format", "{{.Id}}",
                                image_ref(self.config.app.name, rid)))
        return res.stdout.strip() or None if res.ok else None

    def has_release(self, rid: str) -> bool:
        return self.image_id(rid) is not None

    def receive(self, rid: str, archive: bytes) -> str:
        """The release's image on the host: loaded unless the host has that image id."""
        img = release_image(self.config.app.name, rid, archive)
        if self.image_id(rid) == img.id:
            return "kept"
        if self.config.docker.registry:
            return self._pull(rid, img)
        have = self.t.run(Cmd.of("docker", "image", "inspect", "--format", "{{.Id}}", img.id))
        if have.ok and have.stdout.strip() == img.id:
            self.t.check(Cmd.of("docker", "tag", img.id, img.ref))
            return "tagged"
        res = self.t.run(Cmd.of("docker", "load", "--quiet").with_stdin(img.data),
                         timeout=600)
        if not res.ok:
            said = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ApplyError(f"{self.t.name}: docker load refused the image of {rid}: "
                             f"{said[0]}")
        got = self.image_id(rid)
        if got != img.id:
            raise ApplyError(f"{self.t.name}: after docker load, {img.ref} is {got}, "
                             f"expected {img.id}")
        return "loaded"

    def _pull(self, rid: str, img: ReleaseImage) -> str:
        """[docker] registry: pushed once (by digest, no daemon), pulled by digest here."""
        from goship.deploy.registry import Registry, credentials, push

        d = self.config.docker
        login = credentials(d)
        reg = Registry.parse(str(d.registry), d.registry_insecure, login)
        ref = reg.ref(push(reg, img.data, rid))
        if login is None:
            res = self.t.run(Cmd.of("docker", "pull", "--quiet", ref), timeout=600)
        else:
            # Logged in for this pull only: a throwaway DOCKER_CONFIG, the password on
            # stdin (never in argv), nothing left on the host.
            res = self.t.run(Cmd.of(
                "sh", "-c", 'd=$(mktemp -d) || exit 1; trap \'rm -rf "$d"\' EXIT; '
                'DOCKER_CONFIG="$d" docker login --username "$1" --password-stdin "$2" '
                '>/dev/null && DOCKER_CONFIG="$d" docker pull --quiet "$3"',
                "goship-pull", login.username, reg.host, ref, secrets=[login.password],
            ).with_stdin(login.password.encode()), timeout=600)
        if not res.ok:
            raise ApplyError(f"{self.t.name}: docker pull {ref} failed: "
                             f"{first_line(res.stderr or res.stdout)}",
                             hint="the host must reach the registry (and list it in "
                                  "insecure-registries for plain HTTP)")
        self.t.check(Cmd.of("docker", "tag", ref, img.ref))
        got = self.image_id(rid)
        if got != img.id:
            raise ApplyError(f"{self.t.name}: {ref} is {got}, expected {img.id}")
        return "pulled"

    def forget(self, rids: list[str]) -> None:
        """Pruned releases take their images with them (an image a container still uses
        stays: docker refuses, and the next prune tries again)."""
        refs = [image_ref(self.config.app.name, r) for r in rids]
        if refs:
            self.t.run(Cmd.of("docker", "image", "rm", *refs))

    def env_text(self, env: dict[str, str]) -> str:
        return env_text(env)

    # ---- Services -----------------------------------------------------------------------
    def install(self, target: str, live: str | None,
                root: Path | None, releases: dict[str, str] | None = None) -> bool:
        # Nothing to write: a container's definition is its `docker run`. Remember which
        # release each color runs for start().
        self.releases.update(releases or {})
        return False

    def _run_user(self) -> str | None:
        """The service user's uid:gid: the container writes the shared data directories
        that user owns. None (the image's own non-root user) when there is none."""
        if self._user is None:
            user = self.config.service_user
            res = self.t.run(Cmd.of("sh", "-c", 'echo "$(id -u "$1"):$(id -g "$1")"',
                                    "goship-id", user))
            got = res.stdout.strip()
            self._user = got if res.ok and re.fullmatch(r"[1-9]\d*:\d+", got) else ""
        return self._user or None

    def _release_of(self, color: str) -> str:
        rid = self.releases.get(color)
        if rid:
            return rid
        # A start without install (rollback to the warm color does not start): read the
        # release the color's link points to.
        res = self.t.run(Cmd.of("readlink", self.paths.color_link(color)))
        rid = PurePosixPath(res.stdout.strip()).name if res.ok else ""
        if not rid:
            raise ApplyError(f"{self.t.name}: no release known for {color}")
        return rid

    def start(self, color: str) -> None:
        rid = self._release_of(color)
        if self.image_id(rid) is None:
            raise ApplyError(f"{self.t.name}: the image of {rid} is not on the host",
                             hint="deploy it again (goship loads it)")
        user = self._run_user()
        env_file = self.paths.env_file(color)
        for port in self.ports(color):
            argv = run_argv(self.config, self.paths, color=color, port=port, release=rid,
                            env_file=env_file, user=user)
            res = self.t.run(Cmd.of("sh", "-c", RUN, "goship-run",
                                    container_name(self.config.app.name, color, port),
                                    *argv), timeout=120)
            if not res.ok:
                said = first_line(res.stderr or res.stdout)
                raise ApplyError(_failed(f"{self.t.name}: docker run failed: {said}",
                                         self.why(color)))

    def stop(self, color: str, ports: list[int] | None = None) -> None:
        names = self.names(color, ports)
        if not names:
            return
        wait = max(1, int(self.config.run.drain_timeout + 0.999))
        self.t.check(Cmd.of("sh", "-c", STOP, "goship-stop", str(wait), *names),
                     timeout=wait + 60)

    def running(self) -> dict[str, list[int]]:
        res = self.t.run(Cmd.of("docker", "ps", "--all", "--filter",
                                f"label={LABEL}.app={self.config.app.name}",
                                "--format", PS_FORMAT))
        return parse_ps(res.stdout)

    def inspect(self, names: list[str]) -> dict[str, Container]:
        if not names:
            return {}
        res = self.t.run(Cmd.of("docker", "inspect", "--type", "container", "--format",
                                INSPECT_FORMAT, *names))
        return parse_inspect(res.stdout)

    def schedule_stop(self, color: str, ports: list[int], seconds: float) -> None:
        from goship.deploy.layout import standby_unit

        names = self.names(color, ports)
        wait = str(max(1, int(self.config.run.drain_timeout + 0.999)))
        delay = max(1, int(seconds + 0.999))
        stop = ["sh", "-c", STOP, "goship-stop", wait, *names]
        if self.systemd:
            self.t.check(Cmd.of("sh", "-c", SYSTEMD_SCHEDULE, "goship-standby",
                                standby_unit(self.config.app.name, color), f"{delay}s",
                                f"goship: stop the warm standby {color} of "
                                f"{self.config.app.name}", *stop))
            return
        self.cancel_stop(color)
        self.t.check(Cmd.of("sh", "-c", STANDBY_SLEEPER, "goship-standby",
                            self.paths.standby_pid(color), str(delay), shlex.join(stop)))

    def cancel_stop(self, color: str) -> None:
        from goship.deploy.layout import standby_unit

        if self.systemd:
            self.t.run(Cmd.of("sh", "-c", SYSTEMD_CANCEL, "goship-standby-cancel",
                              standby_unit(self.config.app.name, color)))
        else:
            self.t.run(Cmd.of("sh", "-c", STANDBY_CANCEL, "goship-standby-cancel",
                              self.paths.standby_pid(color)))

    def pids(self, color: str) -> dict[int, int | None]:
        found = self.inspect(self.names(color))
        out: dict[int, int | None] = {}
        for port, name in zip(self.ports(color), self.names(color), strict=True):
            c = found.get(name)
            # An image with its own HEALTHCHECK: Docker's "unhealthy" fails the gate too.
            ok = c is not None and c.status == "running" and c.health != "unhealthy"
            out[port] = c.pid if ok and c is not None and c.pid else None
        return out

    def details(self, color: str) -> dict[int, dict[str, object]]:
        """For `goship status`: each instance's container, image, health and restarts."""
        found = self.inspect(self.names(color))
        out: dict[int, dict[str, object]] = {}
        for port, name in zip(self.ports(color), self.names(color), strict=True):
            c = found.get(name)
            if c is not None:
                out[port] = {"container": c.id[:12], "image": c.image, "state": c.status,
                             "docker_health": c.health, "restarts": c.restarts}
        return out

    def log_tail(self, color: str, lines: int = 15) -> str:
        script = 'n=$1; shift; for c in "$@"; do docker logs --tail "$n" "$c" 2>&1; done; exit 0'
        res = self.t.run(Cmd.of("sh", "-c", script, "goship-logs", str(lines),
                                *self.names(color)))
        return res.stdout.strip()

    def why(self, color: str, lines: int = 4) -> str:
        base = super().why(color, lines)
        try:
            found = self.inspect(self.names(color))
        except GoshipError:
            return base
        worst = [c for c in found.values() if c.status != "running" or c.restarts]
        if not worst:
            return base
        c = worst[0]
        state = (f"container {c.name} {c.status} (exit code {c.exit_code}, restarted "
                 f"{c.restarts} time(s))")
        return f"{state}; {base}" if base else state

    def enable(self, live: str, also: list[int] | None = None,
               root: Path | None = None) -> None:
        # The restart policy brings containers back with the engine; nothing to record.
        return None

    def logs_cmd(self, follow: bool, since: str | None, lines: int) -> Cmd:
        opts = ["--timestamps", "--tail", str(lines), *(["--since", since] if since else []),
                *(["--follow"] if follow else [])]
        script = ('app=$1; shift; for c in $(docker ps --all --filter "label=io.goship.app=$app" '
                  '--format "{{.Names}}"); do docker logs "$@" "$c" 2>&1 | '
                  'sed -u "s/^/$c /" & done; wait')
        return Cmd.of("sh", "-c", script, "goship-logs", self.config.app.name, *opts)


def engine_facts(t: Transport) -> dict[str, str] | None:
    """For doctor: the engine's version, storage driver, cgroup version and root directory
    with its free space; None when the engine does not answer."""
    script = ("docker info --format '{{.ServerVersion}}|{{.Driver}}|{{.CgroupVersion}}|"
              "{{.CgroupDriver}}|{{.DockerRootDir}}' 2>/dev/null || exit 1; "
              "d=$(docker info --format '{{.DockerRootDir}}'); df -Pk \"$d\" | tail -1")
    res = t.run(Cmd.of("sh", "-c", script), timeout=30)
    lines = res.stdout.strip().splitlines()
    if not res.ok or len(lines) < 2:
        return None
    return parse_engine(lines[0], lines[1])


def parse_engine(info: str, df: str) -> dict[str, str] | None:
    parts = info.strip().split("|")
    if len(parts) != 5:
        return None
    cols = df.split()
    free = cols[3] if len(cols) >= 4 and cols[3].isdigit() else ""
    return {"version": parts[0], "driver": parts[1], "cgroup": parts[2],
            "cgroup_driver": parts[3], "root": parts[4], "free_kib": free}
