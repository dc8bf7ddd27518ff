"""The run-once release step (`deploy.release_command`, e.g. `./migrate up`): once per
deploy, on one host, under the deploy lock, after the upload and before any host starts
the new release, from the release directory, with the release's environment, as the
service user. The plan names it (pure, below); `run` is its one side effect."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from goship import envquote
from goship.command import Cmd, mask
from goship.errors import ApplyError

if TYPE_CHECKING:
    from goship.config import Config
    from goship.config.model import Target_
    from goship.deploy.host import Host

TAIL_LINES = 20
# The environment the command starts from, besides the release's own: nothing of the
# deploying shell (SSH variables, root's HOME) leaks in, as under the service manager.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# $1 release dir  $2 timeout (s)  $3 user ("": as is)  $4 home  $5 the command line
# $6 PATH.
# stdin: the release's environment as `export K='v'` lines (never on a command line, never
# on disk in clear beyond the release's 0600 file). The command itself runs by `sh -c`
# (the user writes shell) with stdin closed, stderr into stdout, in its own process group
# that `timeout` kills whole (TERM, then KILL 10 s later).
SCRIPT = r"""
dir=$1; limit=$2; user=$3; home=$4; line=$5; path=$6
[ -d "$dir" ] || { echo "release directory $dir is missing"; exit 125; }
inner='eval "$(cat)" || exit 125; cd "$1" || exit 125
exec timeout -k 10 "$2" sh -c "$3" </dev/null 2>&1'
if [ -n "$user" ]; then
  exec runuser -u "$user" -- env -i PATH="$path" HOME="$home" LANG=C.UTF-8 \
    sh -c "$inner" goship-release "$dir" "$limit" "$line"
fi
exec env -i PATH="$path" HOME="$home" LANG=C.UTF-8 \
  sh -c "$inner" goship-release "$dir" "$limit" "$line"
"""


@dataclass(frozen=True)
class ReleaseStep:
    """What the plan says of the release command: where, what, how long at most."""

    host: str
    command: str
    timeout: float
    user: str | None  # None: the user goship runs as (local mode)
    release: str

    def lines(self) -> list[str]:
        who = f"as {self.user}" if self.user else "as the deploying user"
        return [f"release command on {self.host}, once, before any host starts "
                f"{self.release}: {self.command}",
                f"  ({who}, in releases/{self.release}, with its environment; timeout "
                f"{self.timeout:g}s; a failure aborts with nothing switched)"]


def host_names(target: Target_) -> list[tuple[str, str]]:
    """(as written, as goship names the host) for each host of an environment."""
    from goship.config.validators import split_host

    if target.lab is not None:
        return [(f"h{i}", f"h{i}") for i in range(1, target.lab + 1)]
    if target.local:
        return [("local", "local")]
    out = []
    for spec in target.hosts or []:
        user, host, _ = split_host(spec)
        out.append((spec, host if user is None else f"{user}@{host}"))
    return out


def resolve(target: Target_, wanted: str | None) -> str | None:
    """The host name `deploy.release_host` means (the first host when unset); None when
    it names no host of the environment."""
    names = host_names(target)
    if wanted is None:
        return names[0][1] if names else None
    from goship.config.validators import split_host

    for spec, name in names:
        if wanted in (spec, name, split_host(spec)[1]):
            return name
    return None


def plan_step(config: Config, action: str, hosts: list[str], wanted: str | None,
              releases: dict[str, str], *, local: bool = False) -> ReleaseStep | None:
    """The release step of a plan: deploys and canary starts only (never a rollback, a
    promotion or an abort). `hosts`: the hosts this run reached, in order; `wanted`: the
    resolved deploy.release_host (None: the first)."""
    command = config.deploy.release_command
    if not command or action not in ("deploy", "canary") or not hosts:
        return None
    host = wanted or hosts[0]
    if host not in hosts:
        raise ApplyError(f"deploy.release_host {host} was not reached (left out as "
                         f"unreachable): the release command runs on that host only",
                         hint="bring it back, or name another host in deploy.release_host")
    return ReleaseStep(host=host, command=command, timeout=config.deploy.release_command_timeout,
                       user=None if local else config.service_user, release=releases[host])


def exports(env: dict[str, str]) -> str:
    return "".join(f"export {k}={envquote.sh(v)}\n" for k, v in sorted(env.items()))


def tail(output: str, secrets: list[str], lines: int = TAIL_LINES) -> str:
    """The output's last lines, every value of the release's environment masked (a
    migration that prints its DSN does not put it in goship's output)."""
    kept = [ln.rstrip() for ln in output.strip().splitlines()][-lines:]
    return mask("\n".join(kept), [s for s in secrets if len(s) >= 4])


def failure(code: int, timeout: float) -> str:
    if code in (124, 137):
        return f"timed out after {timeout:g}s (deploy.release_command_timeout)"
    if code == 125:
        return "could not start (the release directory or its environment)"
    if code == 127:
        return "exited 127 (command not found)"
    return f"exited {code}"


def run(h: Host, step: ReleaseStep, env: dict[str, str]) -> tuple[float, str]:
    """Run the step on its host. Returns (seconds, output); raises ApplyError with the
    exit status and the output's tail when the command fails or times out."""
    release_dir = h.paths.release(step.release)
    home = h.paths.join("shared", "data")
    cmd = Cmd.of("sh", "-c", SCRIPT, "goship-release-command", release_dir,
                 f"{step.timeout:g}", step.user or "", home, step.command, BASE_PATH,
                 secrets=env.values()).with_stdin(exports(env).encode())
    t0 = time.monotonic()
    res = h.t.run(cmd, timeout=step.timeout + 30)
    seconds = time.monotonic() - t0
    output = res.stdout + (res.stderr if res.stderr.strip() else "")
    if not res.ok:
        said = tail(output, list(env.values()))
        raise ApplyError(f"`{step.command}` {failure(res.code, step.timeout)}"
                         + (f"; output:\n{said}" if said else "; no output"))
    return seconds, output
