"""How the service takes its port, what it needs at run time, what its build needs:
pure functions over comment-stripped Go source and project files."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from goship.inspect.facts import line_of

CONFIG_FLAG_NAMES = {"c", "config", "conf", "config-file", "settings", "f"}
SERVE_COMMANDS = ("server", "serve", "run", "start", "web", "api", "http")
CONFIG_EXT = (".yaml", ".yml", ".toml", ".ini", ".json", ".conf")
DATA_WORDS = {"data", "log", "logs", "runtime", "uploads", "upload", "storage", "tmp", "var"}


@dataclass(frozen=True)
class Flag:
    name: str
    short: str | None
    default: str  # as written in the source
    kind: str  # "string" | "int"
    where: str
    flagset: str  # "" for the global set, else the subcommand (FlagSet name / command)

    @property
    def arg(self) -> str:
        return f"-{self.name}" if len(self.name) == 1 else f"--{self.name}"

    @property
    def port_default(self) -> int | None:
        m = re.search(r"(\d{2,5})\"?$", self.default.strip())
        return int(m.group(1)) if m and 0 < int(m.group(1)) < 65536 else None


FLAG_CALL = re.compile(
    r"\b(\w+)(?:\s*\.\s*(?:Flags|PersistentFlags)\s*\(\s*\))?\s*\.\s*"
    r"(String|Int|Uint|Int64)(Var)?(P)?\s*\(")
URFAVE_FLAG = re.compile(
    r"&?cli\s*\.\s*(String|Int|Uint)Flag\s*\{([^}]*)\}", re.S)
FLAGSET = re.compile(r"\b(\w+)\s*:?=\s*flag\s*\.\s*NewFlagSet\s*\(\s*\"([\w-]+)\"")
COBRA_USE = re.compile(r"cobra\s*\.\s*Command\s*\{[^{}]*?Use\s*:\s*\"([\w-]+)")
URFAVE_CMD = re.compile(r"cli\s*\.\s*Command\s*\{[^{}]*?Name\s*:\s*\"([\w-]+)\"")
ARG_SWITCH = re.compile(r"(?:case|os\.Args\[1\]\s*==)\s*\"(server|serve|run|start|web)\"")


def _args(text: str) -> list[str]:
    """Top-level comma-separated arguments of a call whose "(" was just consumed."""
    depth, cur, out = 0, "", []
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                out.append(cur.strip())
                return out
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    return out


def find_flags(file: str, code: str) -> list[Flag]:
    flagsets = dict(FLAGSET.findall(code))
    out = []
    for m in FLAG_CALL.finditer(code):
        owner, typ, var, short = m.groups()
        if owner not in ("flag", "pflag") and owner not in flagsets and "Flags" not in \
                code[m.start():m.end()]:
            continue
        args = _args(code[m.end():m.end() + 400])
        if var:
            args = args[1:]
        if len(args) < 2 or not args[0].startswith('"'):
            continue
        name = args[0].strip('"')
        sh = args[1].strip('"') if short and len(args) > 2 else None
        default = args[2] if short and len(args) > 2 else args[1]
        out.append(Flag(name, sh, default.strip('"'), "string" if typ == "String" else "int",
                        f"{file}:{line_of(code, m.start())}", flagsets.get(owner, "")))
    for m in URFAVE_FLAG.finditer(code):
        body = m.group(2)
        fname = re.search(r"Name\s*:\s*\"([\w-]+)\"", body)
        value = re.search(r"Value\s*:\s*(\"[^\"]*\"|\d+)", body)
        alias = re.search(r"Aliases\s*:\s*\[\]string\{\s*\"(\w)\"", body)
        if fname:
            out.append(Flag(fname.group(1), alias.group(1) if alias else None,
                            value.group(1).strip('"') if value else "",
                            "string" if m.group(1) == "String" else "int",
                            f"{file}:{line_of(code, m.start())}", ""))
    return out


def port_flag(flags: list[Flag]) -> Flag | None:
    for wanted in ("addr", "address", "listen", "listen-addr", "http-addr", "bind", "port",
                   "http-port", "http"):
        for f in flags:
            if f.name == wanted:
                return f
    return None


def config_flag(flags: list[Flag]) -> Flag | None:
    for f in flags:
        if f.kind == "string" and (f.name in CONFIG_FLAG_NAMES or f.short in {"c"}):
            return f
    return None


def port_args(flag: Flag) -> list[str]:
    """The arguments that give one instance its port, in the flag's own form."""
    if flag.kind == "int" or flag.name in ("port", "http-port"):
        return [flag.arg, "{port}"]
    host = flag.default.rsplit(":", 1)[0] if ":" in flag.default else ""
    return [flag.arg, f"{host}:{{port}}"]


def find_subcommands(file: str, code: str) -> list[tuple[str, str]]:
    """(subcommand, where) of the CLI frameworks' serve-like commands."""
    out = []
    for rx in (FLAGSET, COBRA_USE, URFAVE_CMD, ARG_SWITCH):
        for m in rx.finditer(code):
            name = m.group(m.lastindex or 1)
            if name in SERVE_COMMANDS:
                out.append((name, f"{file}:{line_of(code, m.start())}"))
    return out


GETENV = re.compile(r"os\s*\.\s*(?:Getenv|LookupEnv)\s*\(\s*\"([A-Za-z_][A-Za-z0-9_]*)\"\s*\)")
DEFAULT_PORT = re.compile(r"\"\s*:?(\d{2,5})\s*\"")
VIPER_BIND = re.compile(r"\.\s*BindEnv\s*\(\s*\"([\w.]+)\"\s*(?:,\s*\"([A-Za-z_]\w*)\")?")
VIPER_AUTO = re.compile(r"\.\s*AutomaticEnv\s*\(")
VIPER_PREFIX = re.compile(r"\.\s*SetEnvPrefix\s*\(\s*\"(\w+)\"")
VIPER_GET = re.compile(r"\.\s*Get(?:Int|String)\s*\(\s*\"([\w.]*port[\w.]*|[\w.]*addr)\"", re.I)


@dataclass(frozen=True)
class EnvPort:
    name: str
    default: int | None
    where: str
    certain: bool = True


def find_env_port(file: str, code: str) -> EnvPort | None:
    for m in GETENV.finditer(code):
        name = m.group(1)
        if "PORT" not in name.upper():
            continue
        d = DEFAULT_PORT.search(code[m.end():m.end() + 300])
        default = int(d.group(1)) if d and 0 < int(d.group(1)) < 65536 else None
        return EnvPort(name, default, f"{file}:{line_of(code, m.start())}")
    for m in VIPER_BIND.finditer(code):
        key, env = m.groups()
        if "port" in key.lower() or key.lower().endswith("addr"):
            return EnvPort(env or key.upper().replace(".", "_"), None,
                           f"{file}:{line_of(code, m.start())}", certain=env is not None)
    auto = VIPER_AUTO.search(code)
    get = VIPER_GET.search(code)
    if auto and get:
        prefix = VIPER_PREFIX.search(code)
        name = get.group(1).upper().replace(".", "_")
        if prefix:
            name = f"{prefix.group(1).upper()}_{name}"
        # AutomaticEnv maps "server.port" to SERVER_PORT only with a key replacer.
        return EnvPort(name, None, f"{file}:{line_of(code, get.start())}", certain=False)
    return None


RUN_LITERAL = re.compile(r"\.\s*(?:Run|ListenAndServe)\s*\(\s*\"[^\"]*:(\d{2,5})\"")
ADDR_LITERAL = re.compile(r"Addr\s*:\s*\"[^\"]*:(\d{2,5})\"")


def find_hardcoded_port(file: str, code: str) -> tuple[int, str] | None:
    m = RUN_LITERAL.search(code) or ADDR_LITERAL.search(code)
    return (int(m.group(1)), f"{file}:{line_of(code, m.start())}") if m else None


NOTIFY = re.compile(r"signal\s*\.\s*(?:Notify|NotifyContext)\s*\(")
SHUTDOWN = re.compile(r"\.\s*Shutdown\s*\(")


@dataclass
class Signals:
    sigterm: list[str] = field(default_factory=list)  # where SIGTERM is caught
    other: list[str] = field(default_factory=list)  # Notify without SIGTERM
    shutdown: list[str] = field(default_factory=list)


def find_signals(file: str, code: str, into: Signals) -> None:
    for m in NOTIFY.finditer(code):
        args = ",".join(_args(code[m.end():m.end() + 300]))
        where = f"{file}:{line_of(code, m.start())}"
        # Notify(ch) with no signal list relays every signal, SIGTERM included.
        if "SIGTERM" in args or len(_args(code[m.end():m.end() + 300])) == 1:
            into.sigterm.append(where)
        else:
            into.other.append(where)
    for m in SHUTDOWN.finditer(code):
        into.shutdown.append(f"{file}:{line_of(code, m.start())}")


LITERAL = re.compile(r"\"((?:\./)?[A-Za-z0-9_][\w.\-/]*)(?:\?[^\"]*)?\"")
WRITE_CALL = re.compile(
    r"\b(?:os\s*\.\s*(?:MkdirAll|Mkdir|Create|OpenFile|WriteFile)|SaveUploadedFile|"
    r"sql\s*\.\s*Open|sqlite\s*\.\s*Open|Filename\s*:|filepath\s*\.\s*Join)\s*\(?")


def find_relative_paths(file: str, code: str) -> list[tuple[str, str, bool]]:
    """(path, where, written) of string literals that look like relative paths."""
    out = []
    for m in LITERAL.finditer(code):
        path = m.group(1).removeprefix("./").split("?")[0]
        if "/" not in path and "." not in path and path not in DATA_WORDS:
            continue
        if path.startswith(("http", "github.com", "golang.org", "gopkg.in")) or \
                re.match(r"^[\w-]+\.[a-z]{2,}/", path):
            continue  # an import path or a host name
        line_start = code.rfind("\n", 0, m.start()) + 1
        line_end = code.find("\n", m.end())
        line = code[line_start:len(code) if line_end < 0 else line_end]
        if re.fullmatch(r"\s*(?:import\s+)?(?:[\w.]+\s+)?\"[^\"]*\"\s*\)?\s*", line):
            continue  # an import spec
        written = bool(WRITE_CALL.search(code[line_start:m.start()]))
        if "/" not in path and "." not in path and not written:
            continue  # a bare word ("log", "data") only counts where something is written
        out.append((path, f"{file}:{line_of(code, m.start())}", written))
    return out


def config_files(paths: list[tuple[str, str, bool]]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for path, where, _ in paths:
        if path.endswith(CONFIG_EXT) and path not in seen and not path.startswith(
                ("web/", "static/", "node_modules/")):
            seen[path] = where
    return list(seen.items())


def data_dirs(paths: list[tuple[str, str, bool]]) -> list[tuple[str, str, bool]]:
    """(dir, where, certain): relative directories the code writes."""
    found: dict[str, tuple[str, bool]] = {}
    for path, where, written in paths:
        parts = path.split("/")
        if "upload" in path.lower():
            upto = next(i for i, p in enumerate(parts) if "upload" in p.lower())
            d = "/".join(parts[:upto + 1])
        elif parts[0] in DATA_WORDS:
            d = parts[0]
        else:
            continue
        if "." in d.rsplit("/", 1)[-1] and d == path and d not in DATA_WORDS:
            continue
        certain = written or found.get(d, ("", False))[1]
        if d not in found or (certain and not found[d][1]):
            found[d] = (where, certain)
    return [(d, w, c) for d, (w, c) in found.items()]


PORT_KEYS = {"port", "addr", "address", "listen", "httpport", "http_port", "http-port",
             "listenaddr", "listen_addr", "bind"}


@dataclass(frozen=True)
class ConfigPort:
    key: str  # dotted path, e.g. server.port
    value: int
    line: int


def config_port(name: str, text: str) -> ConfigPort | None:
    """The port key of a yaml/toml/ini/json config file, read line by line (nesting by
    indentation or [section]) so the line number is known."""
    if name.endswith(".json"):
        return _json_port(text)
    for path, key, value, no in _entries(name, text):
        if key.lower() in PORT_KEYS:
            m = re.fullmatch(r"(?:[\w.\-]*:)?(\d{2,5})", value)
            if m and 0 < int(m.group(1)) < 65536:
                return ConfigPort(path, int(m.group(1)), no)
    return None


HOST_KEYS = frozenset({"host", "addr", "address", "listen", "bind", "ip", "http_addr",
                       "listen_addr"})
LOOPBACK = re.compile(r"^(127\.0\.0\.1|localhost|\[?::1\]?)(:\d+)?$")


def loopback_listen(name: str, text: str) -> tuple[str, str, int] | None:
    """(key, value, line) of a listen address on loopback only in a yaml/toml/ini config
    file: right behind a host's nginx, unreachable in a container or a pod."""
    if name.endswith(".json"):
        return None
    for path, key, value, no in _entries(name, text):
        if (key.lower() in HOST_KEYS or key.lower() in PORT_KEYS) and LOOPBACK.match(value):
            return path, value, no
    return None


def _entries(name: str, text: str) -> Iterator[tuple[str, str, str, int]]:
    """(dotted path, key, value, line) of each scalar of a yaml/toml/ini file."""
    section: list[tuple[int, str]] = []  # (indent, key) for yaml
    ini_section = ""
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#")[0].split(";")[0].rstrip() if not name.endswith(
            (".yaml", ".yml")) else raw.split(" #")[0].rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        sec = re.match(r"^\s*\[([^\]]+)\]\s*$", line)
        if sec:
            ini_section = sec.group(1).strip()
            continue
        kv = re.match(r"^(\s*)([\w.-]+)\s*[:=]\s*(.*)$", line)
        if not kv:
            continue
        indent, key, value = len(kv.group(1)), kv.group(2), kv.group(3).strip().strip("\"'")
        while section and section[-1][0] >= indent:
            section.pop()
        if not value:
            section.append((indent, key))
            continue
        path = ".".join([*(k for _, k in section), key])
        if ini_section:
            path = f"{ini_section}.{path}"
        yield path, key, value, no


def _json_port(text: str) -> ConfigPort | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None

    def walk(obj: object, path: list[str]) -> ConfigPort | None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k.lower() in PORT_KEYS and isinstance(v, (int, str)):
                    m = re.fullmatch(r"(?:[\w.\-]*:)?(\d{2,5})", str(v))
                    if m:
                        key = json.dumps(k)
                        line = next((i for i, ln in enumerate(text.splitlines(), 1)
                                     if key in ln), 0)
                        return ConfigPort(".".join([*path, k]), int(m.group(1)), line)
                found = walk(v, [*path, k])
                if found:
                    return found
        return None

    return walk(data, [])


DSN_PATTERNS = [
    ("MySQL", re.compile(r"mysql://|\w+:[^@\s\"]*@tcp\(|go-sql-driver/mysql|gorm\.io/driver/mysql")),
    ("PostgreSQL", re.compile(r"postgres(?:ql)?://|lib/pq\b|jackc/pgx|gorm\.io/driver/postgres|"
                              r"host=\S+ .*dbname=")),
    ("Redis", re.compile(r"rediss?://|go-redis/redis|redis/go-redis|gomodule/redigo")),
]


def find_services(text: str) -> list[str]:
    return [name for name, rx in DSN_PATTERNS if rx.search(text)]


LDFLAG_X = re.compile(r"-X\s*[= ]?\s*['\"]?([\w./-]+)\.(\w+)=([^'\"\s]*)")
TAGS = re.compile(r"-tags[= ]\s*(?:\"([^\"]*)\"|'([^']*)'|([\w,.]+))")


def build_flags(text: str) -> tuple[list[tuple[str, str, str, int]], list[str]]:
    """(-X package, name, value, line) and -tags of a Makefile or .goreleaser.yaml."""
    xs = [(m.group(1), m.group(2), m.group(3), line_of(text, m.start()))
          for m in LDFLAG_X.finditer(text)]
    tags: list[str] = []
    for m in TAGS.finditer(text):
        for t in re.split(r"[ ,]+", (m.group(1) or m.group(2) or m.group(3)).strip()):
            if t and not t.startswith("$") and t not in tags:
                tags.append(t)
    return xs, tags


def make_targets(text: str) -> dict[str, tuple[int, list[str]]]:
    """Makefile targets: name -> (line, recipe lines)."""
    out: dict[str, tuple[int, list[str]]] = {}
    current: str | None = None
    for no, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^([\w.-]+)\s*:(?!=)", line)
        if m and not line.startswith("\t"):
            current = m.group(1)
            out[current] = (no, [])
        elif line.startswith("\t") and current:
            out[current][1].append(line.strip())
        elif line.strip() and not line.startswith("\t"):
            current = None
    return out
