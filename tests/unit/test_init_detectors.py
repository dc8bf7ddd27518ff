"""init's detectors as data: snippets in tests/data/init/*.toml in, facts out."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from goship import goproject
from goship.inspect import detect
from goship.inspect.routes import find_routes

DATA = Path(__file__).parent.parent / "data" / "init"


def cases(name: str) -> list[Any]:
    loaded = tomllib.loads((DATA / name).read_text())["case"]
    return [pytest.param(c, id=c["name"]) for c in loaded]


@pytest.mark.parametrize("case", cases("routes.toml"))
def test_routes(case: dict[str, Any]) -> None:
    files = {f: goproject.strip_comments(src) for f, src in case["files"].items()}
    health = goproject.pick_health_route(find_routes(files))
    got = [health.path, health.certain] if health else ["", False]
    assert got == case["expect"]


@pytest.mark.parametrize("case", cases("ports.toml"))
def test_port_source(case: dict[str, Any], tmp_path: Path) -> None:
    for name, text in case["files"].items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    codes = {f: goproject.strip_comments(src) for f, src in case["files"].items()
             if f.endswith(".go")}
    ins = goproject.Inspection(
        root=tmp_path, gomod=goproject.GoMod("m", None), mains=["."], main=".", gin=True,
        routes=[], health=None, port=None, hardcoded_port=None, assets=[], embedded=[],
        stamps=[], graceful=True)
    goproject._port_and_args(ins, tmp_path, codes)
    kind, args, base, env = case["expect"]
    assert ins.port_kind == kind
    assert ins.args == args
    assert (ins.base_port or 0) == base
    assert (ins.port.name if ins.port else "") == env
    if kind == "config":
        assert len(ins.config_files) == 1
        assert ins.config_files[0] in ins.files  # shipped, and rendered per color
        assert any("replace" in n and "{port}" in n for n in ins.notes)


def _signals(src: str) -> str:
    sig = detect.Signals()
    detect.find_signals("main.go", src, sig)
    if sig.sigterm and sig.shutdown:
        return "graceful"
    if sig.other and sig.shutdown:
        return "interrupt-only"
    return "none"


DETECTORS: dict[str, Any] = {
    "signals": _signals,
    "data_dirs": lambda src: [d for d, _, _ in detect.data_dirs(
        detect.find_relative_paths("main.go", src))],
    "services": detect.find_services,
    "ldflags": lambda src: [f"{p}.{n}={v}" for p, n, v, _ in detect.build_flags(src)[0]],
    "tags": lambda src: detect.build_flags(src)[1],
    "string_vars": lambda src: [v for v in goproject.find_string_vars(src)
                                if v in goproject.STAMP_NAMES],
    "subcommand": lambda src: [n for n, _ in detect.find_subcommands("main.go", src)],
}


@pytest.mark.parametrize("case", cases("facts.toml"))
def test_detector(case: dict[str, Any]) -> None:
    src = goproject.strip_comments(case["src"])
    assert DETECTORS[case["detector"]](src) == case["expect"]


@pytest.mark.parametrize(("base", "clash"), [
    (9000, "9100 is node_exporter"), (8990, "9090 is Prometheus"), (3000, "3000 is Grafana"),
    (6279, "6379 is Redis"), (8080, None)])
def test_well_known_ports(base: int, clash: str | None) -> None:
    from goship.inspect.facts import well_known_clashes
    found = well_known_clashes(base)
    assert (clash is None and not found) or (clash is not None and clash in found[0])


@pytest.mark.parametrize(("name", "text", "expect"), [
    ("config.yaml", "server:\n  host: 127.0.0.1\n  port: 8090\n",
     ("server.host", "127.0.0.1", 2)),
    ("app.toml", "[http]\naddr = \"localhost:8080\"\n", ("http.addr", "localhost:8080", 2)),
    ("config.yaml", "server:\n  host: 0.0.0.0\n  port: 8090\n", None),
    ("config.yaml", "server:\n  port: 8090\n", None),
    ("config.yaml", "db:\n  url: 127.0.0.1\n", None),  # not a listen key
])
def test_a_loopback_listener_is_found(name: str, text: str,
                                      expect: tuple[str, str, int] | None) -> None:
    assert detect.loopback_listen(name, text) == expect


def test_init_says_a_loopback_listener_is_unreachable_in_a_pod(tmp_path: Path) -> None:
    (tmp_path / "main.go").write_text(
        'package main\nfunc main() { cfg := load("config.yaml"); _ = cfg.Server.Port }\n')
    (tmp_path / "config.yaml").write_text("server:\n  host: 127.0.0.1\n  port: 8090\n")
    codes = {"main.go": goproject.strip_comments((tmp_path / "main.go").read_text())}
    ins = goproject.Inspection(
        root=tmp_path, gomod=goproject.GoMod("m", None), mains=["."], main=".", gin=True,
        routes=[], health=None, port=None, hardcoded_port=None, assets=[], embedded=[],
        stamps=[], graceful=True)
    goproject._port_and_args(ins, tmp_path, codes)
    assert ins.port_kind == "config"
    [note] = [n for n in ins.notes if "must listen on" in n]
    assert note.startswith("config.yaml line 2: it listens on 127.0.0.1 only (server.host)")
