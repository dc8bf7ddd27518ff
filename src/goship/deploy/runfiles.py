"""Running a service the way it starts: its arguments (`run.args`), the config files that
hold its port (`run.config_files`, rendered for each instance) and the directories it
writes next to the binary (`run.data_dirs`, kept in shared/ across releases).

Placeholders: {port}, {color}, {release}, {data} (the app's shared data directory). The
argv never passes through a shell: each service manager gets it quoted in its own syntax.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from goship.command import Cmd
from goship.config import Config
from goship.deploy.layout import Paths
from goship.transport.base import Transport

PLACEHOLDERS = ("port", "color", "release", "data")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def check_placeholders(value: str) -> str:
    """Validation: only goship's placeholders; anything else in braces is a typo."""
    unknown = [m.group(1) for m in PLACEHOLDER.finditer(value)
               if m.group(1) not in PLACEHOLDERS]
    if unknown:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; goship fills "
                         f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
    return value


def expand(text: str, values: dict[str, str]) -> str:
    """Replace goship's placeholders only: other braces (JSON, templates) stay."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def data_root(paths: Paths) -> str:
    return paths.join("shared", "data")


# ---- argv, quoted for each service manager ---------------------------------------------
def _systemd_literal(text: str) -> str:
    # systemd.syntax: inside double quotes \ and " escape; % starts a specifier and $ an
    # environment variable: both doubled to stay literal.
    return (text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
            .replace("$", "$$"))


SYSTEMD_BARE = re.compile(r"^[A-Za-z0-9_./:=,@+%${}-]+$")


def _systemd_word(escaped: str) -> str:
    # Quoted unless plainly safe (a lone ";" would separate commands, spaces split words).
    return escaped if SYSTEMD_BARE.match(escaped) and escaped != ";" else f'"{escaped}"'


def systemd_exec(binary: str, args: list[str], *, color: str, data: str) -> str:
    """ExecStart's value: the port is the unit's instance (%i), the release comes from the
    color's environment file (GOSHIP_RELEASE), each word quoted where it needs it."""
    special = {"port": "%i", "release": "${GOSHIP_RELEASE}"}
    literal = {"color": color, "data": data}
    words = [_systemd_word(_systemd_literal(binary))]
    for arg in args:
        out, pos = [], 0
        for m in PLACEHOLDER.finditer(arg):
            out.append(_systemd_literal(arg[pos:m.start()]))
            name = m.group(1)
            out.append(special.get(name) or _systemd_literal(literal.get(name, m.group(0))))
            pos = m.end()
        out.append(_systemd_literal(arg[pos:]))
        words.append(_systemd_word("".join(out)))
    return " ".join(words)


COMMENT_MARK = re.compile(r"(\s)([;#])")


def supervisord_command(prefix: list[str], args: list[str], *, port: int, color: str,
                        release: str, data: str) -> str:
    """supervisord's command=: %-expanded (so % is doubled), then split like a shell."""
    values = {"port": str(port), "color": color, "release": release, "data": data}
    argv = [*prefix, *(expand(a, values) for a in args)]
    # Its ini reader cuts a value at ";" or "#" after whitespace even inside quotes: an
    # empty quoted string ('') between them keeps the word and hides the comment marker
    # (shlex.join quotes every word holding those, so each match is inside quotes).
    return COMMENT_MARK.sub(r"\1''\2", shlex.join(argv).replace("%", "%%"))


# ---- on the host --------------------------------------------------------------------------
def workdir(paths: Paths, color: str, port: int | str) -> str:
    """Where an instance runs when it has config files of its own: a directory that mirrors
    the release (a link per entry) with the rendered files in place."""
    return paths.join("colors", f"{color}-{port}")


@dataclass(frozen=True)
class FileOps:
    """What a color's start needs on the host, besides the binary: computed, then applied."""

    release_dir: str
    data: list[tuple[str, str]]  # (link in the release, shared directory)
    farms: list[tuple[int, str]]  # (port, working directory) with rendered config files
    config_files: list[str]
    values: dict[int, dict[str, str]]  # port -> placeholder values

    def lines(self) -> list[str]:
        out = [f"data: {link} -> {target}" for link, target in self.data]
        out += [f"{', '.join(self.config_files)} rendered for port {p} in {d}"
                for p, d in self.farms]
        return out


def plan_files(config: Config, paths: Paths, color: str, release: str,
               ports: list[int]) -> FileOps:
    rel = paths.release(release)
    root = data_root(paths)
    data = [(f"{rel}/{d.rstrip('/')}", f"{root}/{d.rstrip('/')}") for d in config.run.data_dirs]
    files = list(config.run.config_files)
    farms = [(p, workdir(paths, color, p)) for p in ports] if files else []
    values = {p: {"port": str(p), "color": color, "release": release, "data": root}
              for p in ports}
    return FileOps(rel, data, farms, files, values)


LINK_DATA = r"""
# $1 shared data root  $2 owner ("" = keep)  then pairs: link-in-release shared-dir
root=$1; owner=$2; shift 2
while [ $# -ge 2 ]; do
  link=$1; target=$2; shift 2
  if [ ! -e "$target" ]; then
    mkdir -p "$(dirname "$target")"
    # First time: what the release ships there seeds the shared directory.
    if [ -d "$link" ] && [ ! -L "$link" ]; then cp -a "$link" "$target"; else mkdir -p "$target"; fi
    if [ -n "$owner" ]; then chown -R "$owner:$owner" "$target"; fi
  fi
  if [ -e "$link" ] && [ ! -L "$link" ]; then rm -rf "$link"; fi
  mkdir -p "$(dirname "$link")"
  ln -sfn "$target" "$link"
done
"""

FARM = r"""
# $1 release dir  $2 working directory  $3.. config files (relative): the directory gets a
# link to every entry of the release, real directories along each config file's path, and
# no entry where the rendered file goes.
rel=$1; farm=$2; shift 2
link_all() { for e in "$1"/* "$1"/.[!.]*; do
  if [ -e "$e" ] || [ -L "$e" ]; then ln -s "$e" "$2/${e##*/}"; fi; done; }
rm -rf "$farm.tmp"; mkdir -p "$farm.tmp"
link_all "$rel" "$farm.tmp"
for f in "$@"; do
  src=$rel; cur=$farm.tmp; rest=$(dirname "$f")
  while [ "$rest" != . ]; do
    part=${rest%%/*}; src=$src/$part; cur=$cur/$part
    if [ -L "$cur" ]; then rm "$cur"; mkdir "$cur"; link_all "$src" "$cur"; fi
    case $rest in */*) rest=${rest#*/} ;; *) rest=. ;; esac
  done
  rm -f "$farm.tmp/$f"
done
rm -rf "$farm"; mv "$farm.tmp" "$farm"
"""


def apply_files(t: Transport, ops: FileOps, *, owner: str | None) -> None:
    if ops.data:
        pairs = [x for link, target in ops.data for x in (link, target)]
        t.check(Cmd.of("sh", "-c", LINK_DATA, "goship-data", ops.data[0][1], owner or "",
                       *pairs))
    for port, farm in ops.farms:
        t.check(Cmd.of("sh", "-c", FARM, "goship-workdir", ops.release_dir, farm,
                       *ops.config_files))
        for f in ops.config_files:
            text = t.get(f"{ops.release_dir}/{f}").decode()
            t.put(f"{farm}/{f}", expand(text, ops.values[port]).encode(), mode=0o644)
