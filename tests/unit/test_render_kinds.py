"""The kinds beyond systemd/supervisord/nginx: what each must contain, secrets, hostile
values. The real tools (promtool, kubernetes-validate, actionlint, Docker, nginx, rsyslogd,
logrotate) check them in tests/e2e/test_render_checks.py."""

from __future__ import annotations

import json
import re
import stat
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from goship import envquote
from goship.config import parse
from goship.errors import ConfigError, ConfigErrors
from goship.render.consul import api_body, definition
from goship.render.inputs import RenderInput
from goship.render.kinds import render_kind
from goship.render.monitoring import file_sd, write_file_sd
from tests.conftest import EXAMPLE, CliResult

Run = Callable[..., CliResult]


def ri(over: dict[str, Any] | None = None, **kw: Any) -> RenderInput:
    raw = {"app": {"name": "shop"}, "run": {"env": {"GIN_MODE": "release"}}}
    for k, v in (over or {}).items():
        raw[k] = {**raw.get(k, {}), **v}
    args = {"version": "v1.2.3", **kw}
    return RenderInput(config=parse(raw).base, root=Path("/nonexistent"), **args)


# ---- Windows ---------------------------------------------------------------------------
def test_windows_scripts_hold_exactly_the_documented_commands() -> None:
    files = render_kind("windows", ri({"run": {"drain_timeout": 12.0}}))
    script = files["install-service.ps1"]
    commands = [line for line in script.splitlines()
                if line.startswith(("nssm ", "sc.exe "))]
    assert commands == [
        "nssm install $Service (Join-Path $App 'shop.exe')",
        "nssm set $Service AppDirectory $App",
        "nssm set $Service DisplayName 'shop'",
        "nssm set $Service Start SERVICE_AUTO_START",
        "nssm set $Service AppEnvironmentExtra $Vars",
        'nssm set $Service AppStdout (Join-Path $Base "logs\\stdout.log")',
        'nssm set $Service AppStderr (Join-Path $Base "logs\\stderr.log")',
        "nssm set $Service AppRotateFiles 1",
        "nssm set $Service AppRotateOnline 1",
        "nssm set $Service AppRotateBytes 10485760",
        "nssm set $Service AppExit Default Restart",
        "nssm set $Service AppRestartDelay 5000",
        "nssm set $Service AppStopMethodConsole 12000",
        "sc.exe failure $Service reset= 86400 actions= "
        "restart/60000/restart/60000/restart/60000",
        "sc.exe config $Service start= auto",
        "nssm start $Service",
    ]
    uninstall = [line for line in files["uninstall-service.ps1"].splitlines()
                 if line.startswith("nssm ")]
    assert uninstall == ["nssm stop $Service", "nssm remove $Service confirm"]
    assert "'GIN_MODE=release'" in script
    assert "'PORT=8080'" in script


def test_winsw_xml_parses_and_carries_the_service() -> None:
    hostile = 'a<b>&"c\' $(x)'
    xml = render_kind("windows", ri({"run": {"env": {"GREETING": hostile}}}))["shop.xml"]
    root = ET.fromstring(xml)  # noqa: S314 (our own output)
    assert root.tag == "service"
    assert root.findtext("id") == "shop"
    assert root.findtext("executable") == "C:\\goship\\shop\\current\\shop.exe"
    assert root.findtext("startmode") == "Automatic"
    env = {e.get("name"): e.get("value") for e in root.findall("env")}
    assert env["GREETING"] == hostile  # escaped in XML, intact once parsed
    assert [f.get("action") for f in root.findall("onfailure")] == ["restart"] * 3
    assert root.find("log").get("mode") == "roll-by-size"  # type: ignore[union-attr]


def test_powershell_quoting_keeps_values_literal() -> None:
    assert envquote.powershell("it's $(rm -rf) `x`") == "'it''s $(rm -rf) `x`'"


def test_windows_dir_with_quotes_is_refused() -> None:
    with pytest.raises(ConfigErrors, match=r"windows.dir"):
        parse({"app": {"name": "shop"}, "windows": {"dir": 'C:\\x"; rm'}})


# ---- Dockerfile ------------------------------------------------------------------------
def test_dockerfile_pins_builder_runs_non_root_and_checks_health() -> None:
    files = render_kind("dockerfile", RenderInput(
        config=parse({"app": {"name": "shop"}, "run": {"env": {"X": 'a "b" $HOME'}}}).base,
        root=EXAMPLE, version="v1"))
    d = files["Dockerfile"]
    assert "ARG GO_IMAGE=golang:1.25.0-bookworm" in d  # go.mod's version, pinned
    assert "FROM scratch\n" in d
    assert "USER 65532:65532" in d
    assert 'CMD ["/usr/local/bin/goship-probe", "/health", "PORT"]' in d
    assert "EXPOSE 8080" in d
    assert 'X="a \\"b\\" \\$HOME"' in d
    assert "org.opencontainers.image.revision" in d
    assert ".env*" in files[".dockerignore"]
    assert "package main" in files[".goship-probe/main.go"]


def test_dockerfile_quoting() -> None:
    assert envquote.dockerfile('a\\b"c$d') == '"a\\\\b\\"c\\$d"'


def test_image_reference_is_validated() -> None:
    with pytest.raises(ConfigErrors, match=r"docker.image"):
        parse({"app": {"name": "shop"}, "docker": {"image": "shop:1; rm -rf /"}})


# ---- Kubernetes: secrets ---------------------------------------------------------------
def project_with_secret(tmp_path: Path) -> Path:
    (tmp_path / "goship.toml").write_text(
        '[app]\nname = "shop"\nversion = "1.0.0"\n[run]\nenv_file = ".env.prod"\n'
        "[env.prod]\nhosts = [\"app1\"]\n")
    (tmp_path / ".env.prod").write_text("DB_PASSWORD=hunter2-secret\n")
    return tmp_path


def test_kubernetes_secret_is_masked_unless_asked(tmp_path: Path, run_cli: Run) -> None:
    root = project_with_secret(tmp_path)
    r = run_cli("render", "kubernetes", cwd=root)
    assert r.code == 0, r.err
    assert "hunter2-secret" not in r.out + r.err
    assert 'DB_PASSWORD: "REDACTED"' in r.out
    out = tmp_path / "out"
    r = run_cli("render", "kubernetes", "--show-secrets", "--out", str(out), cwd=root)
    assert r.code == 0, r.err
    secret = out / "secret.yaml"
    assert 'DB_PASSWORD: "hunter2-secret"' in secret.read_text()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "deployment.yaml").stat().st_mode) == 0o644
    assert "hunter2-secret" not in r.out + r.err


def test_kubernetes_deployment_essentials() -> None:
    d = render_kind("kubernetes", ri({"run": {"drain_timeout": 20.0}}))["deployment.yaml"]
    for needle in ("runAsNonRoot: true", "readOnlyRootFilesystem: true", 'drop: ["ALL"]',
                   "terminationGracePeriodSeconds: 30", "maxUnavailable: 0",
                   "startupProbe:", "readinessProbe:", "livenessProbe:", "path: /health",
                   'image: "shop:v1.2.3"', "seconds: 5"):
        assert needle in d, needle


# ---- Consul ----------------------------------------------------------------------------
# The field names and types Consul documents for a service definition (agent config) and
# for PUT /v1/agent/service/register.
DEFINITION = {"id": str, "name": str, "address": str, "port": int, "tags": list,
              "meta": dict, "check": dict}
CHECK = {"id": str, "name": str, "http": str, "method": str, "interval": str,
         "timeout": str, "deregister_critical_service_after": str}
API = {"ID": str, "Name": str, "Address": str, "Port": int, "Tags": list, "Meta": dict,
       "Check": dict}
API_CHECK = {"ID": str, "Name": str, "HTTP": str, "Method": str, "Interval": str,
             "Timeout": str, "DeregisterCriticalServiceAfter": str}
DURATION = re.compile(r"^\d+(ms|s|m|h)$")


def typed(obj: dict[str, Any], spec: dict[str, type]) -> None:
    assert set(obj) <= set(spec), set(obj) - set(spec)
    for key, value in obj.items():
        assert isinstance(value, spec[key]), (key, value)


def test_consul_definitions_use_consuls_names_and_types() -> None:
    r = ri({"run": {"instances": 2}, "consul": {"tags": ["web"], "meta": {"team": "core"}}},
           hosts=["10.0.0.5"], env="prod")
    files = render_kind("consul", r)
    assert sorted(files) == ["10.0.0.5/register/shop-8080.json",
                             "10.0.0.5/register/shop-8081.json",
                             "10.0.0.5/shop-8080.json", "10.0.0.5/shop-8081.json"]
    d = json.loads(files["10.0.0.5/shop-8081.json"])["service"]
    typed(d, DEFINITION)
    typed(d["check"], CHECK)
    assert d["port"] == 8081
    assert d["address"] == "10.0.0.5"
    assert d["tags"] == ["web", "version=v1.2.3", "track=stable", "color=blue"]
    assert d["meta"] == {"team": "core", "version": "v1.2.3", "track": "stable",
                         "color": "blue", "env": "prod"}
    assert d["check"]["http"] == "http://127.0.0.1:8081/health"
    for key in ("interval", "timeout", "deregister_critical_service_after"):
        assert DURATION.match(d["check"][key])
    body = json.loads(files["10.0.0.5/register/shop-8081.json"])
    typed(body, API)
    typed(body["Check"], API_CHECK)
    assert body["Meta"]["team"] == "core"  # meta keys are the user's: not renamed
    assert api_body(definition(r, None, 8080))["ID"] == "shop-8080"


# ---- Prometheus targets and Grafana ----------------------------------------------------
def test_file_sd_follows_the_live_color(tmp_path: Path) -> None:
    r = ri(hosts=["10.0.0.1", "10.0.0.2"], env="prod")
    groups = file_sd(r, {"10.0.0.1": ("green", "v2"), "10.0.0.2": ("blue", "v1")})
    assert groups[0]["targets"] == ["10.0.0.1:8180"]
    assert groups[0]["labels"] == {"env": "prod", "release": "v2", "track": "stable",
                                   "color": "green"}
    assert groups[1]["targets"] == ["10.0.0.2:8080"]
    path = tmp_path / "sd" / "shop.json"
    write_file_sd(path, groups)
    assert json.loads(path.read_text()) == groups
    assert [p.name for p in path.parent.iterdir()] == ["shop.json"]  # no temp file left


def test_grafana_dashboard_model() -> None:
    board = json.loads(render_kind("grafana", ri())["shop-dashboard.json"])
    assert board["uid"] == "goship-shop"
    assert isinstance(board["schemaVersion"], int)
    assert board["__inputs"][0]["pluginId"] == "prometheus"
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0, p["title"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert p["targets"], p["title"]
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"])
    titles = " ".join(p["title"] for p in panels)
    for word in ("Instances up", "Requests per second", "5xx ratio", "p99"):
        assert word in titles
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    assert "by (release, track)" in exprs


# ---- nginx: TLS, load balancer ---------------------------------------------------------
def test_letsencrypt_renders_the_issue_script_and_renewal_hook() -> None:
    files = render_kind("nginx", ri({"proxy": {"server_names": ["shop.example.com"], "tls": {
        "mode": "letsencrypt", "email": "ops@example.com"}}}))
    site = files["goship-shop.conf"]
    assert "ssl_certificate /etc/letsencrypt/live/shop.example.com/fullchain.pem;" in site
    assert "location ^~ /.well-known/acme-challenge/ {" in site
    assert "return 301 https://$host$request_uri;" in site
    assert 'Strict-Transport-Security "max-age=63072000" always' in site
    assert "ssl_stapling on;" in site
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in site
    issue = files["letsencrypt/goship-shop-issue.sh"]
    assert "certbot certonly --webroot -w /var/www/goship-acme" in issue
    assert "-d shop.example.com" in issue
    assert "--email ops@example.com" in issue
    hook = files["letsencrypt/renewal-hooks/deploy/goship-shop-reload-nginx.sh"]
    assert "systemctl reload nginx" in hook


@pytest.mark.parametrize(("proxy", "message"), [
    ({"tls": {"mode": "letsencrypt", "email": "ops@example.com"}}, "needs server_names"),
    ({"server_names": ["a.example"], "tls": {"mode": "letsencrypt",
                                             "email": "x@y; rm -rf /"}}, "e-mail"),
    ({"tls": {"mode": "files", "cert": "/etc/c.pem", "key": "/etc/k.pem", "listen": 80}},
     "its own port"),
    ({"server_names": ["*.example.com"], "tls": {"mode": "letsencrypt",
                                                 "email": "ops@example.com"}},
     "wildcards need a DNS challenge"),
    ({"static": [{"url": "/static", "dir": "static"}]}, "must end with '/'"),
    ({"static": [{"url": "/s/", "dir": "../etc"}]}, "inside the project"),
])
def test_bad_proxy_settings_are_refused(proxy: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigErrors, match=re.escape(message)):
        parse({"app": {"name": "shop"}, "proxy": proxy})


def test_lb_spreads_across_the_hosts_with_weights() -> None:
    r = ri({"proxy": {"lb": {"weights": {"10.0.0.2": 3}}}}, hosts=["10.0.0.1", "10.0.0.2"],
           env="prod")
    conf = render_kind("lb", r)["goship-shop-lb.conf"]
    assert "server 10.0.0.1:80 max_fails=3 fail_timeout=10s;" in conf
    assert "server 10.0.0.2:80 weight=3 max_fails=3 fail_timeout=10s;" in conf
    assert "least_conn;" in conf
    bad = ri({"proxy": {"lb": {"weights": {"10.9.9.9": 2}}}}, hosts=["10.0.0.1"], env="prod")
    with pytest.raises(ConfigError, match=r"10\.9\.9\.9 is not a host of env\.prod"):
        render_kind("lb", bad)


# ---- CI --------------------------------------------------------------------------------
def test_ci_workflow_builds_every_target_and_deploys_the_env() -> None:
    wf = render_kind("ci", ri({"build": {"targets": ["linux/amd64", "linux/arm64"]},
                               "ci": {"deploy_env": "production", "go_version": "1.23.4"}}))
    text = wf[".github/workflows/shop.yml"]
    assert "- linux/amd64\n" in text
    assert "- linux/arm64\n" in text
    assert "environment: production" in text
    assert "goship deploy production" in text
    assert 'go-version: "1.23.4"' in text
    assert "secrets.SSH_PRIVATE_KEY" in text
    assert "startsWith(github.ref, 'refs/tags/v')" in text


def test_istio_split_matches_the_first_canary_step() -> None:
    yaml = pytest.importorskip("yaml")
    files = render_kind("kubernetes", ri({"kubernetes": {"istio": True},
                                          "canary": {"steps": [10, 50, 100]}}))
    rule, service = list(yaml.safe_load_all(files["istio/virtualservice.yaml"]))
    assert rule["kind"] == "DestinationRule"
    assert [s["labels"]["goship.dev/track"] for s in rule["spec"]["subsets"]] == \
        ["stable", "canary"]
    forced, split = service["spec"]["http"]
    assert forced["match"][0]["headers"]["x-goship-track"] == {"exact": "canary"}
    assert [(d["destination"]["subset"], d["weight"]) for d in split["route"]] == \
        [("stable", 90), ("canary", 10)]
    # the stable Service selects both tracks, so the mesh can split between them
    stable = yaml.safe_load(files["service.yaml"])
    assert "goship.dev/track" not in stable["spec"]["selector"]
