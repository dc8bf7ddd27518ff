"""Read a Go project the way a person would: go.mod, main packages, routes, port variable,
asset directories, -X stamp variables, graceful shutdown. Parsers are pure functions over
source text so they are tested as data; `inspect()` walks the tree and calls them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from goship.errors import UsageError

SKIP_DIRS = {"vendor", "testdata", "node_modules", "dist", "build", ".git", ".goship"}
HEALTH_WORDS = ("healthz", "health", "livez", "readyz", "ready", "ping", "status")
CONVENTIONAL_ASSETS = ("templates", "static", "assets", "public", "web")
STAMP_NAMES = {
    "version", "Version", "commit", "Commit", "gitCommit", "GitCommit", "buildTime",
    "BuildTime", "buildDate", "BuildDate", "date", "Date", "builtAt", "BuildVersion",
}
STAMP_PACKAGES = {"main", "buildinfo", "version", "build", "meta", "info"}


@dataclass
class GoMod:
    module: str
    go_version: str | None
    requires: set[str] = field(default_factory=set)


@dataclass
class Route:
    method: str
    path: str


@dataclass
class StampVar:
    package_path: str  # full import path, or "main" for a main package
    name: str

    @property
    def flag(self) -> str:
        return f"{self.package_path}.{self.name}"


@dataclass
class PortVar:
    name: str
    default: int | None


@dataclass
class Inspection:
    root: Path
    gomod: GoMod
    mains: list[str]  # main package dirs relative to root, "." for the root
    main: str  # the one this service builds
    gin: bool
    routes: list[Route]
    health: str | None
    port: PortVar | None
    hardcoded_port: int | None
    assets: list[str]
    embedded: list[str]
    stamps: list[StampVar]
    graceful: bool


GOMOD_MODULE = re.compile(r"^\s*module\s+(\S+)", re.M)
GOMOD_GO = re.compile(r"^\s*go\s+(\d+\.\d+(?:\.\d+)?)", re.M)
GOMOD_REQUIRE = re.compile(r"^\s*(?:require\s+)?([A-Za-z0-9.\-_~/]+\.[A-Za-z]+/\S+)\s+v\S+", re.M)


def parse_gomod(text: str) -> GoMod:
    m = GOMOD_MODULE.search(text)
    if not m:
        raise UsageError("go.mod has no module line", hint="run `go mod init MODULE`")
    go = GOMOD_GO.search(text)
    return GoMod(
        module=m.group(1).strip('"'),
        go_version=go.group(1) if go else None,
        requires={r.group(1) for r in GOMOD_REQUIRE.finditer(text)},
    )


PACKAGE = re.compile(r"^\s*package\s+(\w+)", re.M)
FUNC_MAIN = re.compile(r"^func\s+main\s*\(\s*\)", re.M)


def package_name(src: str) -> str | None:
    m = PACKAGE.search(strip_comments(src))
    return m.group(1) if m else None


def strip_comments(src: str) -> str:
    """Drop // and /* */ comments, keeping string literals (and line numbers) intact."""
    out: list[str] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c in "\"'`":
            end = i + 1
            while end < n and src[end] != c:
                if c != "`" and src[end] == "\\":
                    end += 1
                end += 1
            out.append(src[i:end + 1])
            i = end + 1
        elif src.startswith("//", i):
            if src.startswith("//go:embed", i):  # a directive, not a comment
                end = src.find("\n", i)
                end = n if end < 0 else end
                out.append(src[i:end])
                i = end
                continue
            end = src.find("\n", i)
            i = n if end < 0 else end
        elif src.startswith("/*", i):
            end = src.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append("\n" * src.count("\n", i, end))
            i = end
        else:
            out.append(c)
            i += 1
    return "".join(out)


ROUTE = re.compile(
    r"\b(\w+)\s*\.\s*(GET|HEAD|Any|Handle)\s*\(\s*(?:\"(GET|HEAD)\"\s*,\s*)?\"(/[^\"]*)\"")
GROUP = re.compile(r"\b(\w+)\s*:?=\s*(\w+)\s*\.\s*Group\s*\(\s*\"(/[^\"]*)\"")


def find_routes(src: str) -> list[Route]:
    """GET routes, with prefixes of `g := r.Group("/api")` groups in the same file."""
    code = strip_comments(src)
    prefixes: dict[str, str] = {}
    for m in GROUP.finditer(code):
        var, parent, prefix = m.groups()
        prefixes[var] = prefixes.get(parent, "") + prefix
    routes = []
    for m in ROUTE.finditer(code):
        var, method, handle_method, path = m.groups()
        if method == "Handle" and handle_method is None:
            continue
        full = (prefixes.get(var, "") + path).replace("//", "/")
        routes.append(Route("GET" if method in ("Any", "Handle") else method, full))
    return routes


def pick_health(routes: list[Route]) -> str | None:
    paths = [r.path for r in routes if r.method in ("GET", "HEAD") and ":" not in r.path]
    for word in HEALTH_WORDS:
        for p in paths:
            last = p.rstrip("/").rsplit("/", 1)[-1].lower()
            if last == word:
                return p
    return None


GETENV = re.compile(r"os\s*\.\s*(?:Getenv|LookupEnv)\s*\(\s*\"([A-Za-z_][A-Za-z0-9_]*)\"\s*\)")
DEFAULT_PORT = re.compile(r"\"\s*:?(\d{2,5})\s*\"")
RUN_LITERAL = re.compile(r"\.\s*(?:Run|ListenAndServe)\s*\(\s*\"[^\"]*:(\d{2,5})\"")
ADDR_LITERAL = re.compile(r"Addr\s*:\s*\"[^\"]*:(\d{2,5})\"")


def find_port(src: str) -> PortVar | None:
    """The environment variable the service reads its port from, and its fallback."""
    code = strip_comments(src)
    for m in GETENV.finditer(code):
        name = m.group(1)
        if "PORT" not in name.upper():
            continue
        window = code[m.end():m.end() + 300]
        d = DEFAULT_PORT.search(window)
        default = int(d.group(1)) if d and 0 < int(d.group(1)) < 65536 else None
        return PortVar(name, default)
    return None


def find_hardcoded_port(src: str) -> int | None:
    code = strip_comments(src)
    m = RUN_LITERAL.search(code) or ADDR_LITERAL.search(code)
    return int(m.group(1)) if m else None


ASSET_CALLS = re.compile(
    r"\.\s*(LoadHTMLGlob|LoadHTMLFiles|Static|StaticFS|StaticFile|Dir)\s*\(([^)]*)\)")
STRING = re.compile(r"\"([^\"]*)\"")
EMBED = re.compile(r"^//go:embed\s+(.+)$", re.M)


def find_asset_refs(src: str) -> list[str]:
    """Directories the code reads at run time, relative to the working directory."""
    code = strip_comments(src)
    found: list[str] = []
    for m in ASSET_CALLS.finditer(code):
        call, args = m.groups()
        strings = STRING.findall(args)
        if not strings:
            continue
        if call in ("Static", "StaticFile", "StaticFS"):
            if len(strings) < 2:
                continue  # the filesystem is not a literal (an embed.FS, a variable)
            target = strings[1]  # StaticFS("/s", http.Dir("web/dist")) reads web/dist
        else:
            target = strings[0]
        d = _asset_dir(target, is_file=call in ("LoadHTMLFiles", "StaticFile"))
        if d and d not in found:
            found.append(d)
    return found


def _asset_dir(target: str, *, is_file: bool) -> str | None:
    if not target or target.startswith("/") or "://" in target:
        return None
    p = PurePosixPath(target.removeprefix("./"))
    parts = list(p.parts)
    # Cut at the first glob and, for files, at the file name.
    for i, part in enumerate(parts):
        if any(ch in part for ch in "*?["):
            parts = parts[:i]
            break
    else:
        if is_file:
            parts = parts[:-1]
    if not parts or ".." in parts:
        return None
    return str(PurePosixPath(*parts))


def find_embeds(src: str) -> list[str]:
    out = []
    for m in EMBED.finditer(src):
        for pattern in m.group(1).split():
            d = _asset_dir(pattern.strip("\"`").removeprefix("all:"), is_file=False)
            if d:
                out.append(d.split("/")[0])
    return out


VAR_BLOCK = re.compile(r"^var\s*\((.*?)^\)", re.M | re.S)
VAR_LINE = re.compile(r"^var\s+(.+)$", re.M)
VAR_SPEC = re.compile(r"^\s*([A-Za-z_][\w]*(?:\s*,\s*[A-Za-z_]\w*)*)\s*(string)?\s*(?:=\s*(.+))?$")


def find_string_vars(src: str) -> list[str]:
    """Package-level string variables (never constants: -X cannot set those)."""
    code = strip_comments(src)
    specs: list[str] = []
    for m in VAR_BLOCK.finditer(code):
        specs.extend(m.group(1).splitlines())
    for m in VAR_LINE.finditer(code):
        if not m.group(1).lstrip().startswith("("):
            specs.append(m.group(1))
    names: list[str] = []
    for spec in specs:
        s = VAR_SPEC.match(spec)
        if not s:
            continue
        idents, typ, value = s.groups()
        if typ is None and not (value and value.strip().startswith('"')):
            continue
        if value and not value.strip().startswith('"'):
            continue  # initialised from an expression: -X would not win
        names.extend(n.strip() for n in idents.split(","))
    return names


SHUTDOWN = re.compile(r"\.\s*Shutdown\s*\(")
NOTIFY = re.compile(r"signal\s*\.\s*(?:Notify|NotifyContext)\s*\(")


def graceful_parts(src: str) -> tuple[bool, bool]:
    """(catches a signal, calls Shutdown): often in different files, so judged together."""
    code = strip_comments(src)
    return bool(NOTIFY.search(code)), bool(SHUTDOWN.search(code))


def go_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        files.extend(Path(dirpath) / f for f in sorted(filenames)
                     if f.endswith(".go") and not f.endswith("_test.go"))
    return files


def list_mains(root: Path, sources: dict[Path, str]) -> list[str]:
    """Main package dirs, from `go list` when the toolchain is here, else from the source."""
    go = shutil.which("go")
    if go:
        try:
            res = subprocess.run(
                [go, "list", "-e", "-f", "{{if eq .Name \"main\"}}{{.Dir}}{{end}}", "./..."],
                cwd=root, capture_output=True, text=True, timeout=120, check=False,
                env={**os.environ, "GOFLAGS": "-mod=mod", "GOWORK": "off", "GOPROXY": "off"},
            )
            dirs = [Path(line) for line in res.stdout.splitlines() if line.strip()]
            if res.returncode == 0 and dirs:
                return sorted(_rel(d, root) for d in dirs)
        except (OSError, subprocess.TimeoutExpired):
            pass
    mains = {_rel(p.parent, root) for p, src in sources.items()
             if package_name(src) == "main" and FUNC_MAIN.search(src)}
    return sorted(mains)


def _rel(d: Path, root: Path) -> str:
    rel = d.resolve().relative_to(root.resolve()).as_posix()
    return rel or "."


def choose_main(mains: list[str], app_name: str) -> str:
    preferred = [f"cmd/{app_name}", "cmd/server", "cmd/api", "cmd/web", "cmd/app", "."]
    for p in preferred:
        if p in mains:
            return p
    return mains[0]


def inspect(root: Path, main: str | None = None) -> Inspection:
    gomod_path = root / "go.mod"
    if not gomod_path.is_file():
        raise UsageError(f"{root}: no go.mod here",
                         hint="run goship init in the Go module's directory (or `go mod init`)")
    gomod = parse_gomod(gomod_path.read_text(encoding="utf-8"))
    sources = {p: p.read_text(encoding="utf-8", errors="replace") for p in go_files(root)}
    mains = list_mains(root, sources)
    if not mains:
        raise UsageError(f"{root}: no main package found",
                         hint="a service needs `package main` with `func main()`")
    name = default_app_name(gomod.module)
    if main is not None:
        main = main.removeprefix("./").rstrip("/") or "."
        if main not in mains:
            raise UsageError(f"--main {main}: not a main package here",
                             hint=f"choose one of: {', '.join(mains)}")
    chosen = main or choose_main(mains, name)

    routes: list[Route] = []
    port: PortVar | None = None
    hardcoded: int | None = None
    assets: list[str] = []
    embedded: list[str] = []
    stamps: list[StampVar] = []
    notifies = shuts_down = False
    main_dir = (root / chosen).resolve()
    for path, src in sources.items():
        rel_dir = _rel(path.parent, root)
        pkg = package_name(src)
        in_main = path.parent.resolve() == main_dir
        if pkg == "main" and not in_main:
            continue  # another binary's code says nothing about this one
        routes.extend(find_routes(src))
        port = port or find_port(src)
        hardcoded = hardcoded or find_hardcoded_port(src)
        for d in find_asset_refs(src):
            if d not in assets:
                assets.append(d)
        embedded.extend(e if rel_dir == "." else f"{rel_dir}/{e}" for e in find_embeds(src))
        n, s = graceful_parts(src)
        notifies, shuts_down = notifies or n, shuts_down or s
        if pkg in STAMP_PACKAGES:
            import_path = "main" if pkg == "main" else (
                gomod.module if rel_dir == "." else f"{gomod.module}/{rel_dir}")
            for var in find_string_vars(src):
                if var in STAMP_NAMES and not any(
                        s.name == var and s.package_path == import_path for s in stamps):
                    stamps.append(StampVar(import_path, var))

    for conventional in CONVENTIONAL_ASSETS:
        if (root / conventional).is_dir() and not any(
                a == conventional or a.startswith(conventional + "/") for a in assets):
            assets.append(conventional)
    assets = [a for a in assets if (root / a).exists()
              and not any(a == e or a.startswith(e + "/") for e in embedded)]
    return Inspection(
        root=root, gomod=gomod, mains=mains, main=chosen,
        gin="github.com/gin-gonic/gin" in gomod.requires,
        routes=routes, health=pick_health(routes), port=port, hardcoded_port=hardcoded,
        assets=_outermost(assets), embedded=sorted(set(embedded)), stamps=stamps,
        graceful=notifies and shuts_down,
    )


def _outermost(dirs: list[str]) -> list[str]:
    """`web` already ships `web/templates`: keep the outermost of nested dirs."""
    keep = []
    for d in dirs:
        if not any(d != o and d.startswith(o + "/") for o in dirs):
            keep.append(d)
    return keep


def default_app_name(module: str) -> str:
    last = module.rstrip("/").rsplit("/", 1)[-1]
    if re.fullmatch(r"v\d+", last) and "/" in module:
        last = module.rstrip("/").rsplit("/", 2)[-2]
    name = re.sub(r"[^a-z0-9-]+", "-", last.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = "app-" + name if name else "app"
    return name[:48].rstrip("-")
