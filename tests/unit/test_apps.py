"""Several apps on one host, as data: the conflict decision between two apps' nginx
claims, the claims read back from the host's sites, the path app's rendering and keys."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from goship.config.model import Config
from goship.deploy.apps import AppConflict, conflict, refuse_conflicts
from goship.deploy.plan import Artifact, HostView, plan_host
from goship.errors import ExitCode
from goship.facts import AppClaim, parse_claims, parse_facts
from goship.render import kinds
from goship.render.context import Paths

CASES = json.loads((Path(__file__).parent.parent / "data" / "apps" / "conflicts.json")
                   .read_text())


def claim(app: str, raw: dict[str, Any]) -> AppClaim:
    return AppClaim(app=raw.get("app", app), listen=raw["listen"],
                    server_names=raw["server_names"], path=raw["path"])


@pytest.mark.parametrize("case", CASES, ids=[c["why"] for c in CASES])
def test_conflict_decision(case: dict[str, Any]) -> None:
    why = conflict(claim("mine", case["mine"]), claim("mine", case["theirs"]))
    if case["refused"] is None:
        assert why is None
    else:
        assert why is not None
        assert why.startswith(case["refused"])
        assert "proxy." in why  # says how to fix it


def config_of(toml: str) -> Config:
    return Config.model_validate(tomllib.loads('[app]\nname = "api"\n' + toml))


def view(apps: list[AppClaim], **kw: Any) -> HostView:
    return HostView(name="h1", manager="systemd", lua=True, live_color=None,
                    live_release=None, state={}, releases={}, listeners={},
                    running={"blue": [], "green": []}, env_kept=[], now=0.0, apps=apps, **kw)


def test_deploy_refused_before_any_change_with_exit_2() -> None:
    shop = AppClaim(app="shop", listen=[80], server_names=[], path=None)
    with pytest.raises(AppConflict) as e:
        plan_host(config_of(""), view([shop]), "deploy", "r1", Artifact("r1", "x"))
    assert e.value.exit_code == ExitCode.USAGE
    assert e.value.line().startswith("h1: app shop already claims the default server")
    assert "\n" not in e.value.line()
    # A path app beside it is refused too (same default server); by name it passes.
    refuse_conflicts(config_of('[proxy]\nserver_names = ["api.example.com"]\n'), "h1", [shop])


def test_another_apps_live_ports_are_not_taken_even_while_it_restarts() -> None:
    # Nothing listens on shop's live 8080 at this moment (a restart): still shop's.
    shop = AppClaim(app="shop", listen=[80], server_names=["shop.example.com"], path=None,
                    color="blue", ports={"blue": [8080], "green": [8180]})
    plan = plan_host(config_of("[proxy]\npath = \"/api\"\n"), view([shop]), "deploy", "r1",
                     Artifact("r1", "x"))
    assert plan.ports["blue"] == [8081]  # the preflight moved off shop's port
    assert plan.notes == ["h1: 8080 is used by goship app shop (blue); blue uses 8081"]


SHOP = "/etc/nginx/conf.d/goship-shop.conf:"
OLD = "/etc/nginx/conf.d/goship-old.conf:"
CLAIM = {"app": "shop", "color": "green", "listen": [80], "path": None, "release": "v1",
         "ports": {"blue": [8080], "green": [8180]}, "server_names": ["shop.example.com"]}
SITE_LINES = "\n".join([
    SHOP + "# shop: written by goship (release v1, color green). Do not edit by",
    SHOP + "# goship-claim: " + json.dumps(CLAIM),
    SHOP + "    listen 80;",
    SHOP + "    server_name shop.example.com;",
    OLD + "# old: written by goship (release r9, color blue). Do not edit by",
    OLD + "    listen 8080 default_server;",
    OLD + "    server_name _;",
    "/etc/nginx/conf.d/goship-other.conf:# someone's own file that only looks like goship's",
]) + "\n"


def test_claims_are_read_back_from_the_sites_and_older_sites_too() -> None:
    facts = parse_facts("@apps\n" + SITE_LINES + "@end\n")
    assert [(c.app, c.listen, c.server_names, c.path, c.release, c.color)
            for c in facts.apps] == [
        ("old", [8080], [], None, "r9", "blue"),
        ("shop", [80], ["shop.example.com"], None, "v1", "green")]
    assert facts.apps[1].ports == {"blue": [8080], "green": [8180]}
    assert parse_claims("") == []


def render_parts(toml: str, color: str = "blue") -> tuple[str, str | None]:
    c = config_of(toml)
    text = kinds.nginx_site_conf(c, Paths("/srv", c.app.name), color, "r1", lua=True)
    return kinds.split_site(text)


def test_a_path_app_renders_locations_only_under_its_prefix() -> None:
    site, locations = render_parts('[proxy]\npath = "/api"\nstrip_path = true\n')
    assert locations is not None
    assert "server {\n    listen 80" not in site  # no server of its own on the port
    assert '"path":"/api"' in site  # the claim line
    assert "location ^~ /api/ {" in locations
    assert "location = /api {" in locations
    assert "rewrite ^/api/?(.*)$ /$1 break;" in locations
    assert "location / " not in locations
    shared = kinds.nginx_paths_server(80, [], "/etc/nginx/goship/paths/80-default/*.conf")
    assert "listen 80 default_server;" in shared
    assert "include /etc/nginx/goship/paths/80-default/*.conf;" in shared


def test_without_strip_path_the_uri_reaches_the_app_unchanged() -> None:
    _, locations = render_parts('[proxy]\npath = "/v1.api"\n')
    assert locations is not None
    assert "rewrite" not in locations.split("rewrite_by_lua")[0]
    assert "location ^~ /v1.api/ {" in locations


def test_path_apps_on_one_listen_and_names_share_one_server_file() -> None:
    a = config_of('[proxy]\npath = "/a"\nserver_names = ["x.example.com"]\n')
    b = config_of('[proxy]\npath = "/b"\nserver_names = ["x.example.com"]\n')
    b = b.model_copy(update={"app": b.app.model_copy(update={"name": "bee"})})
    (la, sa), (lb, sb) = kinds.system_paths_files(a), kinds.system_paths_files(b)
    assert sa == sb
    assert la != lb
    assert la.rsplit("/", 1)[0] == lb.rsplit("/", 1)[0]


@pytest.mark.parametrize("bad", ["api", "/api/", "/", "/../etc", "/a/./b", "/a;b", "/a b",
                                 "/a\nb", "/$x", "/.hidden"])
def test_hostile_or_odd_prefixes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="URL path prefix"):
        config_of(f"[proxy]\npath = {json.dumps(bad)}\n")


def test_strip_path_needs_path_and_stream_paths_stay_under_it() -> None:
    with pytest.raises(ValueError, match="strip_path needs path"):
        config_of("[proxy]\nstrip_path = true\n")
    with pytest.raises(ValueError, match="outside path"):
        config_of('[proxy]\npath = "/api"\nstream_paths = ["/events"]\n')


def test_goship_apps_lists_each_app_of_each_host() -> None:
    from goship.cli.cmd_apps import rows, table

    shop = AppClaim(app="shop", listen=[80], server_names=["shop.example.com"], path=None,
                    release="v1", color="green", ports={"blue": [8080], "green": [8180]})
    api = AppClaim(app="api", listen=[80], server_names=[], path="/api", release="r2",
                   color="blue", ports={"blue": [8081], "green": [8181]})
    got = rows({"h1": [api, shop], "h2": "h2: ssh: connection refused"})
    lines = table(got)
    assert lines[0].split() == ["HOST", "APP", "RELEASE", "LIVE", "PORTS", "SERVED", "AT"]
    assert lines[1].split() == ["h1", "api", "r2", "blue", "blue=8081", "green=8181",
                                "default", "server/api", ":80"]
    assert lines[2].split() == ["h1", "shop", "v1", "green", "blue=8080", "green=8180",
                                "shop.example.com", ":80"]
    assert "FAILED: h2: ssh: connection refused" in lines[3]
    assert got[1]["path"] is None
    assert got[0] == {"host": "h1", "app": "api", "release": "r2", "live": "blue",
                      "ports": {"blue": [8081], "green": [8181]}, "listen": [80],
                      "server_names": [], "path": "/api"}
