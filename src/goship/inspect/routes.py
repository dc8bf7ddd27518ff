"""Gin routes across the files and packages of one binary: groups declared in one file
and used in another, functions receiving a *gin.RouterGroup, Handle/Match/Any."""

from __future__ import annotations

import re
from dataclasses import dataclass

from goship.inspect.facts import line_of

ROUTER_TYPES = r"\*?gin\.(?:RouterGroup|Engine|IRouter|IRoutes)"
FUNC = re.compile(r"^func\s+(?:\([^)]*\)\s*)?(\w+)\s*\(([^)]*)\)[^\n]*\{\s*$", re.M)
ROOT = re.compile(r"\b([\w.]+)\s*:?=\s*gin\s*\.\s*(?:New|Default)\s*\(")
GROUP = re.compile(r"\b([\w.]+)\s*:?=\s*([\w.]+)\s*\.\s*Group\s*\(\s*\"([^\"]*)\"")
CALL = re.compile(r"\b(?:[\w]+\.)?(\w+)\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)")
ROUTE = re.compile(
    r"\b([\w.]+)\s*\.\s*(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|Any|Handle|Match)\s*\(")
METHOD_CONST = {f"http.Method{m.title()}": m for m in
                ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}
STRING = re.compile(r"\"([^\"]*)\"|(http\.Method\w+)")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    where: str = ""
    certain: bool = True


@dataclass
class _Func:
    name: str
    file: str
    start: int  # offset of the body in the file
    body: str
    params: list[tuple[str, bool]]  # (name, is a router)


def _functions(file: str, code: str) -> list[_Func]:
    out = []
    for m in FUNC.finditer(code):
        end = code.find("\n}", m.end())
        end = len(code) if end < 0 else end
        params = []
        for p in m.group(2).split(","):
            bits = p.split()
            if bits:
                params.append((bits[0], bool(re.fullmatch(ROUTER_TYPES, bits[-1]))))
        out.append(_Func(m.group(1), file, m.end(), code[m.end():end], params))
    # Top-level code outside functions (package vars) counts as one more scope.
    out.append(_Func("", file, 0, code, []))
    return out


def _join(prefix: str, path: str) -> str:
    full = "/" + "/".join(p for p in (prefix + "/" + path).split("/") if p)
    return full if not path.endswith("/") or full == "/" else full + "/"


def find_routes(files: dict[str, str]) -> list[Route]:
    """Routes of the files of one binary ({relative path: comment-stripped code})."""
    funcs = [f for file, code in files.items() for f in _functions(file, code)]
    scopes: dict[int, dict[str, str]] = {id(f): {} for f in funcs}
    known: dict[str, str] = {}  # every router variable of the binary, for fields/globals
    by_name: dict[str, list[_Func]] = {}
    for f in funcs:
        if f.name and any(is_router for _, is_router in f.params):
            by_name.setdefault(f.name, []).append(f)
    for _ in range(6):  # until the prefixes stop changing (calls chain a few deep)
        changed = False
        for f in funcs:
            env = scopes[id(f)]
            for m in ROOT.finditer(f.body):
                changed |= _bind(env, known, m.group(1), "")
            for m in GROUP.finditer(f.body):
                var, parent, prefix = m.groups()
                base = env.get(parent, known.get(parent))
                if base is not None:
                    changed |= _bind(env, known, var, _join(base, prefix))
            for m in CALL.finditer(f.body):
                args = [a.strip() for a in m.group(2).split(",")]
                for g in by_name.get(m.group(1), []):
                    for (pname, is_router), arg in zip(g.params, args, strict=False):
                        base = env.get(arg, known.get(arg))
                        if is_router and base is not None:
                            changed |= _bind(scopes[id(g)], {}, pname, base)
        if not changed:
            break
    routes: list[Route] = []
    for f in funcs:
        if f.name == "" and any(g.file == f.file and g.name for g in funcs):
            continue  # the whole-file scope: its functions are seen one by one
        env = scopes[id(f)]
        for m in ROUTE.finditer(f.body):
            var, call = m.groups()
            tail = f.body[m.end():m.end() + 300]
            prefix = env.get(var, known.get(var))
            where = f"{f.file}:{line_of(files[f.file], f.start + m.start())}"
            for method, path in _methods_and_path(call, tail):
                routes.append(Route(method, _join(prefix or "", path), where,
                                    certain=prefix is not None))
    seen: set[tuple[str, str]] = set()
    unique = []
    for r in routes:
        if (r.method, r.path) not in seen:
            seen.add((r.method, r.path))
            unique.append(r)
    return unique


def _bind(env: dict[str, str], known: dict[str, str], var: str, prefix: str) -> bool:
    changed = env.get(var) != prefix
    env[var] = prefix
    known.setdefault(var, prefix)
    return changed


def _methods_and_path(call: str, args: str) -> list[tuple[str, str]]:
    tokens = [s or METHOD_CONST.get(c, "?") for s, c in STRING.findall(args)[:2]]
    if call == "Match":
        close = args.find("}")
        if close < 0:
            return []
        methods = [s or METHOD_CONST.get(c, "?") for s, c in STRING.findall(args[:close])]
        rest = STRING.findall(args[close:])
        if not rest or not rest[0][0]:
            return []
        return [(m.upper(), rest[0][0]) for m in methods]
    if call == "Handle":
        if len(tokens) < 2:
            return []
        return [(tokens[0].upper(), tokens[1])]
    m = STRING.match(args.lstrip())
    if not m or m.group(1) is None:
        return []
    return [("GET" if call == "Any" else call, m.group(1))]
