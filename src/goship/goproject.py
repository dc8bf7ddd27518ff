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
from goship.inspect import detect, project
from goship.inspect.facts import Fact, well_known_clashes
from goship.inspect.routes import Route
from goship.inspect.routes import find_routes as _graph_routes

SKIP_DIRS = {"vendor", "testdata", "node_modules", "dist", "build", ".git", ".goship"}
HEALTH_WORDS = ("healthz", "health", "livez", "readyz", "ready", "ping", "status")
CONVENTIONAL_ASSETS = ("templates", "static", "assets", "public", "web")
STAMP_NAMES = {
    "version", "Version", "commit", "Commit", "gitCommit", "GitCommit", "buildTime",
    "BuildTime", "buildDate", "BuildDate", "date", "Date", "builtAt", "BuiltAt", "built",
    "Built", "BuildVersion",
}
STAMP_PACKAGES = {"main", "buildinfo", "version", "build", "meta", "info"}


@dataclass
class GoMod:
    module: str
    go_version: str | None
    requires: set[str] = field(default_factory=set)


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
    module_dir: str = "."
    facts: list[Fact] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    port_kind: str = "none"  # env | flag | config | hardcoded | none
    base_port: int | None = None
    args: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # build.files
    config_files: list[str] = field(default_factory=list)  # run.config_files
    data_dirs: list[str] = field(default_factory=list)
    cgo: bool = False
    tags: list[str] = field(default_factory=list)
    before: list[str] = field(default_factory=list)
    literal_stamps: dict[str, str] = field(default_factory=dict)  # -X main.Mode=prod
    notes: list[str] = field(default_factory=list)  # comments for goship.toml


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


def find_routes(src: str) -> list[Route]:
    """Routes of one file (the unit tests' entry); inspect() resolves the whole binary."""
    return _graph_routes({"main.go": strip_comments(src)})


def pick_health(routes: list[Route]) -> str | None:
    r = pick_health_route(routes)
    return r.path if r else None


def pick_health_route(routes: list[Route]) -> Route | None:
    usable = [r for r in routes if r.method == "GET" and ":" not in r.path
              and "*" not in r.path]
    for certain in (True, False):
        for word in HEALTH_WORDS:
            for r in usable:
                if r.certain == certain and r.path.rstrip("/").rsplit("/", 1)[-1].lower() == word:
                    return r
    return None


def find_port(src: str) -> PortVar | None:
    """The environment variable the service reads its port from, and its fallback."""
    found = detect.find_env_port("main.go", strip_comments(src))
    return PortVar(found.name, found.default) if found else None


def find_hardcoded_port(src: str) -> int | None:
    found = detect.find_hardcoded_port("main.go", strip_comments(src))
    return found[0] if found else None


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
    module_dir = "."
    if not (root / "go.mod").is_file():
        subs = project.module_dirs(root)
        if len(subs) != 1:
            hint = (f"run goship init in one of: {', '.join(subs)} (or keep this directory and "
                    "set app.module_dir)" if subs else
                    "run goship init in the Go module's directory (or `go mod init`)")
            raise UsageError(f"{root}: no go.mod here", hint=hint)
        module_dir = subs[0]
    mod_root = root / module_dir
    gomod = parse_gomod((mod_root / "go.mod").read_text(encoding="utf-8"))
    mod_json = project.gomod_json(mod_root)
    if mod_json:
        gomod.requires |= {r["Path"] for r in mod_json.get("Require") or []}
    sources = {p: p.read_text(encoding="utf-8", errors="replace") for p in go_files(mod_root)}
    mains = list_mains(mod_root, sources)
    if not mains:
        raise UsageError(f"{mod_root}: no main package found",
                         hint="a service needs `package main` with `func main()`")
    name = default_app_name(gomod.module)
    if main is not None:
        main = main.removeprefix("./").rstrip("/") or "."
        if main not in mains:
            raise UsageError(f"--main {main}: not a main package here",
                             hint=f"choose one of: {', '.join(mains)}")
    chosen = main or choose_main(mains, name)
    main_dir = (mod_root / chosen).resolve()
    pkgs = project.list_deps(mod_root, chosen)
    facts: list[Fact] = []
    if pkgs is not None:
        mine = {f.resolve() for f in pkgs.files}
        binary = {p: src for p, src in sources.items() if p.resolve() in mine}
        for f in pkgs.files:  # cgo files of the module are not in go_files' walk order
            if f not in binary and f.is_file():
                binary[f] = f.read_text(encoding="utf-8", errors="replace")
        how = "go list -deps"
    else:
        # No toolchain or modules: every non-main package plus the chosen main.
        binary = {p: src for p, src in sources.items()
                  if package_name(src) != "main" or p.parent.resolve() == main_dir}
        how = "source walk (go list unavailable)"
    codes = {_rel(p, mod_root): strip_comments(src) for p, src in binary.items()}
    facts.append(Fact("main package", chosen, True, how))

    routes = _graph_routes(codes)
    health = pick_health_route(routes)
    if health:
        facts.append(Fact("health route", health.path, health.certain, health.where))

    ins = Inspection(
        root=root, gomod=gomod, mains=mains, main=chosen,
        gin="github.com/gin-gonic/gin" in gomod.requires or any(
            i.startswith("github.com/gin-gonic/gin") for i in (pkgs.imports if pkgs else [])),
        routes=routes, health=health.path if health else None, port=None,
        hardcoded_port=None, assets=[], embedded=[], stamps=[], graceful=False,
        module_dir=module_dir, facts=facts)
    if pkgs is None:
        ins.warnings.append("go list could not read the build graph (no Go toolchain, or "
                            "modules not downloaded: run `go mod download`); read every "
                            "non-main package instead, cgo and //go:embed not checked")
    _port_and_args(ins, mod_root, codes)
    _runtime_paths(ins, mod_root, codes, sources)
    _stamps(ins, mod_root, binary)
    _build_needs(ins, mod_root, pkgs, codes)
    _signals(ins, codes)
    if ins.base_port is not None:
        ins.warnings.extend(well_known_clashes(ins.base_port if 1024 <= ins.base_port <= 64000
                                               else 8080))
    return ins


def _port_and_args(ins: Inspection, mod_root: Path, codes: dict[str, str]) -> None:
    flags = [f for file, code in codes.items() for f in detect.find_flags(file, code)]
    subs = [s for file, code in codes.items() for s in detect.find_subcommands(file, code)]
    sub = subs[0] if subs else None
    if sub:
        ins.args.append(sub[0])
        ins.facts.append(Fact("serve subcommand", sub[0], True, sub[1]))
    scoped = [f for f in flags if f.flagset in ("", sub[0] if sub else "")]
    cfg_flag = detect.config_flag(scoped)
    if cfg_flag and cfg_flag.default and (mod_root / cfg_flag.default).is_file():
        ins.args += [cfg_flag.arg, cfg_flag.default]
        ins.facts.append(Fact("config file flag", f"{cfg_flag.arg} {cfg_flag.default}", True,
                              cfg_flag.where))
    flag = detect.port_flag(scoped)
    env = next((e for file, code in codes.items()
                if (e := detect.find_env_port(file, code))), None)
    if flag:
        ins.port_kind = "flag"
        ins.args += detect.port_args(flag)
        ins.base_port = flag.port_default
        ins.facts.append(Fact("port", f"flag {flag.arg} (default {flag.default or 'none'})",
                              True, flag.where))
        return
    if env:
        ins.port_kind = "env"
        ins.port = PortVar(env.name, env.default)
        ins.base_port = env.default
        ins.facts.append(Fact("port", f"env ${env.name}" + (
            f" (default {env.default})" if env.default else ""), env.certain, env.where))
        return
    paths = [p for file, code in codes.items() for p in detect.find_relative_paths(file, code)]
    candidates = [c for c, _ in detect.config_files(paths)]
    if cfg_flag and cfg_flag.default:
        candidates.insert(0, cfg_flag.default)
    for cf in candidates:
        path = mod_root / cf
        if not path.is_file():
            continue
        found = detect.config_port(cf, path.read_text(encoding="utf-8", errors="replace"))
        if found is None:
            continue
        key = found.key.rsplit(".", 1)[-1]
        certain = any(f'"{key}"' in code or f'"{key},' in code for code in codes.values())
        ins.port_kind = "config"
        ins.base_port = found.value
        for lst in (ins.files, ins.config_files):
            if cf not in lst:
                lst.append(cf)
        ins.facts.append(Fact("port", f"config {cf} key {found.key} = {found.value}", certain,
                              f"{cf}:{found.line}"))
        ins.notes.append(f"The port is read from {cf} ({found.key}, line {found.line}): "
                         f"replace {found.value} there with {{port}}; goship writes each "
                         f"color's port into its copy of the file.")
        loop = detect.loopback_listen(cf, path.read_text(encoding="utf-8", errors="replace"))
        if loop:
            ins.notes.append(f"{cf} line {loop[2]}: it listens on {loop[1]} only ({loop[0]}): "
                             "right behind nginx on a host; in a container or a Kubernetes "
                             "pod it must listen on 0.0.0.0.")
        return
    for file, code in codes.items():
        hard = detect.find_hardcoded_port(file, code)
        if hard:
            ins.port_kind = "hardcoded"
            ins.hardcoded_port = hard[0]
            ins.base_port = hard[0]
            ins.facts.append(Fact("port", f"hard-coded {hard[0]}", True, hard[1]))
            ins.warnings.append(f"the port {hard[0]} is hard-coded at {hard[1]}: change the "
                                f"code to read it from $PORT (or a flag), goship gives each "
                                f"color its own port")
            return
    ins.warnings.append("no port setting found (env var, flag, config key): goship will set "
                        "$PORT, make the service read it")


def _runtime_paths(ins: Inspection, mod_root: Path, codes: dict[str, str],
                   sources: dict[Path, str]) -> None:
    paths = [p for file, code in codes.items() for p in detect.find_relative_paths(file, code)]
    opened = dict(detect.config_files(paths))
    for cf in opened:
        if (mod_root / cf).is_file() and cf not in ins.files:
            ins.files.append(cf)
    for cf in ins.files:
        ins.facts.append(Fact("config file shipped", cf, True, opened.get(cf, "flag default")))
    for d, where, certain in detect.data_dirs(paths):
        if d not in ins.data_dirs:
            ins.data_dirs.append(d)
            ins.facts.append(Fact("data dir (written)", d, certain, where))
    assets: list[str] = []
    for code in codes.values():
        for d in find_asset_refs(code):
            if d not in assets:
                assets.append(d)
    embedded: list[str] = []
    for path, src in sources.items():
        rel_dir = _rel(path.parent, mod_root)
        if _rel(path, mod_root) in codes:
            embedded.extend(e if rel_dir == "." else f"{rel_dir}/{e}" for e in find_embeds(src))
    for conventional in CONVENTIONAL_ASSETS:
        if (mod_root / conventional).is_dir() and not any(
                a == conventional or a.startswith(conventional + "/") for a in assets):
            assets.append(conventional)
    ins.embedded = sorted(set(embedded))
    ins.assets = _outermost([
        a for a in assets if (mod_root / a).exists()
        and not any(a == e or a.startswith(e + "/") for e in ins.embedded)
        and not any(a == d or a.startswith(d + "/") for d in ins.data_dirs)])
    uploads = [d for d in ins.data_dirs if any(d.startswith(a + "/") for a in ins.assets)]
    for u in uploads:
        ins.warnings.append(f"{u} holds user uploads inside the asset directory "
                            f"{u.split('/')[0]}: it is a data dir (run.data_dirs, kept in "
                            f"shared/); keep it out of git so no release ships it")
    text = "\n".join(codes.values())
    for cf in ins.files:
        text += "\n" + (mod_root / cf).read_text(encoding="utf-8", errors="replace")
    for svc in detect.find_services(text + "\n" + "\n".join(ins.gomod.requires)):
        ins.warnings.append(f"the service uses {svc}: the hosts need one reachable "
                            f"(set its address through run.env or the shipped config)")
        ins.facts.append(Fact("needs", svc, False, "imports/DSN"))


def _build_needs(ins: Inspection, mod_root: Path, pkgs: project.Packages | None,
                 codes: dict[str, str]) -> None:
    if pkgs and pkgs.cgo:
        ins.cgo = True
        ins.facts.append(Fact("cgo", ", ".join(pkgs.cgo), True, "go list CgoFiles"))
    if pkgs:
        git = project.tracked(mod_root)
        for miss in project.missing_embeds(mod_root, pkgs.embeds, git):
            if miss.step:
                if miss.step not in ins.before:
                    ins.before.append(miss.step)
                ins.facts.append(Fact("build step", miss.step, False, miss.step_where))
                ins.notes.append(f"//go:embed {miss.pattern} matches no file in git; "
                                 f"`{miss.step}` ({miss.step_where}) makes it")
            else:
                ins.warnings.append(f"//go:embed {miss.pattern} matches no file in git and "
                                    f"no Makefile/package.json step makes it: set "
                                    f"build.before to the command that does")
    for name in ("Makefile", ".goreleaser.yaml", ".goreleaser.yml"):
        path = mod_root / name
        if not path.is_file():
            continue
        xs, tags = detect.build_flags(path.read_text(encoding="utf-8", errors="replace"))
        for pkg, var, value, line in xs:
            flag = f"{pkg}.{var}"
            if var.lower() in STAMP_VALUE_NAMES:
                if not any(st.flag == flag for st in ins.stamps):
                    ins.stamps.append(StampVar(pkg, var))  # placeholders, not $(VERSION)
                    ins.facts.append(Fact("version variable", flag, True, f"{name}:{line}"))
                continue
            if re.fullmatch(r"[A-Za-z0-9._:+@/-]+", value):
                ins.literal_stamps[flag] = value
                ins.facts.append(Fact("-X flag", f"{flag}={value}", True, f"{name}:{line}"))
        for t in tags:
            if t not in ins.tags:
                ins.tags.append(t)
                ins.facts.append(Fact("build tag", t, True, name))


STAMP_VALUE_NAMES = {"version", "buildversion", "commit", "gitcommit", "buildtime",
                     "builddate", "date", "builtat", "built"}


def _stamps(ins: Inspection, mod_root: Path, binary: dict[Path, str]) -> None:
    for path, src in binary.items():
        pkg = package_name(src)
        if pkg not in STAMP_PACKAGES:
            continue
        rel_dir = _rel(path.parent, mod_root)
        import_path = "main" if pkg == "main" else (
            ins.gomod.module if rel_dir == "." else f"{ins.gomod.module}/{rel_dir}")
        for var in find_string_vars(src):
            if var in STAMP_NAMES and not any(
                    s.name == var and s.package_path == import_path for s in ins.stamps):
                ins.stamps.append(StampVar(import_path, var))
                ins.facts.append(Fact("version variable", f"{import_path}.{var}", True,
                                      _rel(path, mod_root)))


def _signals(ins: Inspection, codes: dict[str, str]) -> None:
    sig = detect.Signals()
    for file, code in codes.items():
        detect.find_signals(file, code, sig)
    ins.graceful = bool(sig.sigterm and sig.shutdown)
    if ins.graceful:
        ins.facts.append(Fact("graceful shutdown", "SIGTERM + Shutdown", True, sig.sigterm[0]))
    elif sig.other and sig.shutdown:
        ins.facts.append(Fact("graceful shutdown", "os.Interrupt only", True, sig.other[0]))
        ins.warnings.append(f"only os.Interrupt/SIGINT is caught ({sig.other[0]}): systemd and "
                            f"supervisord stop with SIGTERM, which kills the service without "
                            f"draining; add syscall.SIGTERM to signal.Notify")


def _outermost(dirs: list[str]) -> list[str]:
    """`web` already ships `web/templates`: keep the outermost of nested dirs."""
    keep = []
    for d in dirs:
        if not any(d != o and d.startswith(o + "/") for o in dirs):
            keep.append(d)
    return keep


GENERIC_LAST = {"server", "backend", "api", "service", "app", "src", "go", "cmd"}


def default_app_name(module: str) -> str:
    """The module path's last element (not the directory's name); a generic one such as
    `server` in a monorepo takes its parent's name too: github.com/acme/shop/server ->
    shop-server, so two monorepos' servers do not share a name."""
    parts = module.rstrip("/").split("/")
    if re.fullmatch(r"v\d+", parts[-1]) and len(parts) > 1:
        parts = parts[:-1]
    last = parts[-1]
    if last.lower() in GENERIC_LAST and len(parts) > 1 and "." not in parts[-2]:
        last = f"{parts[-2]}-{last}"
    name = re.sub(r"[^a-z0-9-]+", "-", last.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = "app-" + name if name else "app"
    return name[:48].rstrip("-")
