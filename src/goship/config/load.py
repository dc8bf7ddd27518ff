"""Read goship.toml, validate it at the boundary, merge environments.

Each problem becomes one ConfigError naming the file, the key path, what was expected and
what was found."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from goship.config.model import SECTIONS, TARGET_KEYS, Config, Target_
from goship.errors import ConfigError, ConfigErrors

M = TypeVar("M", bound=BaseModel)

FILENAME = "goship.toml"
DOCS = "docs/config.md"
SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSW|PASSWD|PRIVATE|CREDENTIAL|API_?KEY|DSN|_KEY$)", re.I)


@dataclass(frozen=True)
class Environment:
    name: str
    target: Target_
    config: Config
    # What one command resolved once (engine.env_values): a [secrets] command runs once
    # per goship command, however many steps need the values.
    memo: dict[str, dict[str, str]] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Project:
    file: Path
    base: Config
    envs: Mapping[str, Environment]

    @property
    def root(self) -> Path:
        return self.file.parent

    def env(self, name: str) -> Environment:
        try:
            return self.envs[name]
        except KeyError:
            known = ", ".join(sorted(self.envs)) or "none"
            raise ConfigError(
                str(self.file), f"env.{name}", f"no such environment (defined: {known})",
                hint=f"add an [env.{name}] table or pick a defined one",
            ) from None


def find_config(start: Path | None = None) -> Path:
    """goship.toml in `start` or the nearest parent, like git finds its repository."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        candidate = d / FILENAME
        if candidate.is_file():
            return candidate
    raise ConfigError(
        FILENAME, "", f"not found in {here} or any parent directory",
        hint="run `goship init` in your Go project, or pass --config PATH",
    )


def load(path: Path) -> Project:
    file = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(file, "", "file not found",
                          hint="run `goship init` or pass --config PATH") from None
    except UnicodeDecodeError as e:
        raise ConfigError(file, "", f"not UTF-8 text ({e.reason})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(file, "", f"invalid TOML: {e}",
                          hint="see https://toml.io for the syntax") from None
    return parse(raw, file=file, path=path)


def parse(raw: dict[str, Any], *, file: str = FILENAME, path: Path | None = None) -> Project:
    errors: list[ConfigError] = []
    for key in raw:
        if key not in (*SECTIONS, "env"):
            errors.append(_unknown(file, key, key, (*SECTIONS, "env")))
    base_raw = {k: raw[k] for k in SECTIONS if k in raw}
    base = _validate(Config, base_raw, file, "", errors)

    envs: dict[str, Environment] = {}
    env_tables = raw.get("env", {})
    if not isinstance(env_tables, dict):
        errors.append(ConfigError(file, "env", f"expected tables [env.NAME], found "
                                  f"{_kind(env_tables)}"))
        env_tables = {}
    for name, table in env_tables.items():
        prefix = f"env.{name}"
        if not re.match(r"^[a-z][a-z0-9_-]{0,31}$", name):
            errors.append(ConfigError(file, prefix, f"expected an environment name of "
                                      f"lowercase letters, digits, '-' and '_', found {name!r}"))
            continue
        if not isinstance(table, dict):
            errors.append(ConfigError(file, prefix, f"expected a table, found {_kind(table)}"))
            continue
        for key in table:
            if key not in (*TARGET_KEYS, *SECTIONS):
                errors.append(_unknown(file, f"{prefix}.{key}", key, (*TARGET_KEYS, *SECTIONS)))
        target_raw, overrides = _split_env_table(table)
        target = _validate(Target_, target_raw, file, prefix, errors)
        merged = _validate(Config, deep_merge(base_raw, overrides), file, prefix, errors,
                           overrides=overrides)
        if target is not None and merged is not None:
            envs[name] = Environment(name, target, merged)
            wanted = merged.deploy.release_host
            if wanted is not None and _release_host(target, wanted) is None:
                where = f"{prefix}.deploy.release_host" if _in(
                    overrides, ("deploy", "release_host")) else "deploy.release_host"
                errors.append(ConfigError(
                    file, where, f"{wanted!r} is not a host of env.{name}",
                    hint=f"name one of its hosts ({_host_list(target)}) or drop the key "
                         f"(default: the first host)"))

    if errors:
        raise ConfigErrors(_dedupe(errors))
    if base is None:  # unreachable: a failed base always added an error
        raise ConfigErrors([ConfigError(file, "", "invalid configuration")])
    return Project(file=path or Path(file), base=base, envs=envs)


CLUSTER_KEYS = ("lab", "kubeconfig", "context")


def _split_env_table(table: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An environment's keys: where it deploys (Target_) and what it overrides (sections).
    `kubernetes` is both: a string (`"lab"`) or a table's lab/kubeconfig/context choose the
    cluster; the table's other keys (namespace, replicas, ...) override [kubernetes]."""
    target = {k: table[k] for k in TARGET_KEYS if k in table and k != "kubernetes"}
    overrides = {k: table[k] for k in SECTIONS if k in table and k != "kubernetes"}
    kube = table.get("kubernetes")
    if isinstance(kube, dict):
        cluster = {k: kube[k] for k in CLUSTER_KEYS if k in kube}
        rest = {k: val for k, val in kube.items() if k not in CLUSTER_KEYS}
        if cluster:
            target["kubernetes"] = cluster
        if rest or not cluster:
            overrides["kubernetes"] = rest
    elif kube is not None:
        target["kubernetes"] = kube
    return target, overrides


def _release_host(target: Target_, wanted: str) -> str | None:
    from goship.deploy.release_command import resolve

    return resolve(target, wanted)


def _host_list(target: Target_) -> str:
    from goship.deploy.release_command import host_names

    return ", ".join(spec for spec, _ in host_names(target))


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; any other value (lists included) replaces."""
    out = dict(base)
    for k, val in over.items():
        if isinstance(val, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], val)
        else:
            out[k] = val
    return out


def _validate(
    model: type[M], data: dict[str, Any], file: str, prefix: str, errors: list[ConfigError],
    *, overrides: Mapping[str, Any] | None = None,
) -> M | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"])
            # An error inside an environment's merged config is reported where the value
            # was written: under [env.NAME] when the environment set it, else at the base.
            where = prefix
            if overrides is not None and not _in(overrides, loc):
                where = ""
            errors.append(_from_pydantic(file, where, loc, err, model))
        return None


def _in(tree: Mapping[str, Any], loc: tuple[str, ...]) -> bool:
    node: Any = tree
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False
    return True


def _from_pydantic(
    file: str, prefix: str, loc: tuple[str, ...], err: Any, model: type[BaseModel]
) -> ConfigError:
    key = key_path(prefix, loc)
    kind = err["type"]
    section = loc[0] if loc else ""
    if not section or (prefix and section in TARGET_KEYS):
        section = "env" if prefix else ""
    hint = f"see {DOCS}#{section}" if section else f"see {DOCS}"
    if kind == "extra_forbidden":
        allowed = _allowed(model, loc[:-1])
        return _unknown(file, key, loc[-1], allowed)
    if kind == "missing":
        return ConfigError(file, key, "required key is missing", hint=hint)
    found = err.get("input")
    shown = _show(found, loc)
    msg: str = err["msg"]
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
        if "found" not in msg and not isinstance(found, dict):
            msg = f"{msg}, found {shown}"
        return ConfigError(file, key, msg, hint=hint)
    msg = msg.replace("Input should be", "expected").replace("Input", "value")
    msg = re.sub(r"expected (?:a valid )?(integer|number|string|boolean|list|dictionary)",
                 lambda m: f"expected {_ARTICLE[m.group(1)]}", msg)
    if kind.endswith("_type") or kind.endswith("_parsing"):
        msg = f"{msg}, found {shown} ({_kind(found)})"
        name = loc[-1] if loc and not loc[-1].isdigit() else "the value"
        fix = _TYPE_FIX.get(kind.split("_")[0])
        if fix:
            hint = fix.format(name=name)
    elif not isinstance(found, dict):
        msg = f"{msg}, found {shown}"
    return ConfigError(file, key, msg, hint=hint)


_ARTICLE = {"integer": "an integer", "number": "a number", "string": "a string",
            "boolean": "true or false", "list": "an array", "dictionary": "a table"}

_TYPE_FIX = {
    "int": "write {name} as a whole number without quotes",
    "float": "write {name} as a number without quotes, e.g. 2.5",
    "bool": "write {name} as true or false without quotes",
    "string": 'write {name} in double quotes, e.g. "value"',
    "list": 'write {name} as an array, e.g. ["a", "b"]',
    "dict": "write {name} as a table, e.g. {name} = {{ KEY = \"value\" }}",
}


def key_path(prefix: str, loc: tuple[str, ...]) -> str:
    """`env.prod.hosts[0]`: dotted keys, array positions in brackets."""
    out = prefix
    for part in loc:
        if part == "[key]":  # pydantic's marker for "the key itself was wrong"
            continue
        if part.isdigit():
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else part
    return out


def _allowed(model: type[BaseModel], loc: tuple[str, ...]) -> tuple[str, ...]:
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return ()
        current = _model_of(fields[part].annotation)
    fields = getattr(current, "model_fields", None)
    return tuple(fields) if fields else ()


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _unknown(file: str, key: str, name: str, allowed: tuple[str, ...]) -> ConfigError:
    import difflib  # only for a typo's suggestion

    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f"did you mean {close[0]!r}?" if close else None
    expected = f"; expected one of: {', '.join(allowed)}" if allowed else ""
    return ConfigError(file, key, f"unknown key{expected}", hint=hint or f"see {DOCS}")


def _show(value: Any, loc: tuple[str, ...]) -> str:
    if len(loc) >= 3 and loc[:2] == ("run", "env") and SECRET_NAME.search(loc[2]):
        return "'******'"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)


def _dedupe(errors: list[ConfigError]) -> list[ConfigError]:
    seen: set[str] = set()
    out = []
    for e in errors:
        if e.line() not in seen:
            seen.add(e.line())
            out.append(e)
    return out


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))
