"""goship.toml validation: every error path gives one line naming file, key, expectation,
what was found, and a fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from goship.config import load, parse
from goship.errors import ConfigError, ConfigErrors
from tests.conftest import EXAMPLE, REPO

BASE: dict[str, Any] = {"app": {"name": "shop"}}


def errors_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        parse(raw, file="goship.toml")
    return [e.line() for e in info.value.errors]


def with_(**sections: Any) -> dict[str, Any]:
    return {**BASE, **sections}


def test_minimal_config_has_documented_defaults() -> None:
    project = parse(BASE)
    cfg = project.base
    assert cfg.app.version == "git"
    assert cfg.build.targets == ["linux/amd64"]
    assert cfg.run.port_env == "PORT"
    assert cfg.run.health.path == "/health"
    assert cfg.deploy.strategy == "bluegreen"
    assert cfg.deploy.base_path == "/srv"
    assert cfg.service_user == "shop"
    assert cfg.app.binary_name == "shop"


def test_env_lab_spelling_from_the_issue_works() -> None:
    project = parse({**BASE, "env": {"lab": {"lab": 2}}})
    env = project.env("lab")
    assert env.target.kind == "lab"
    assert env.target.lab == 2


def test_env_overrides_any_section_and_merges_tables() -> None:
    project = parse({
        **BASE,
        "run": {"instances": 1, "env": {"GIN_MODE": "release"}},
        "env": {"prod": {"hosts": ["deploy@app1:2222", "app2"],
                         "run": {"instances": 3, "env": {"REGION": "eu"}}}},
    })
    prod = project.env("prod").config
    assert prod.run.instances == 3
    assert prod.run.env == {"GIN_MODE": "release", "REGION": "eu"}
    assert project.base.run.instances == 1  # the base is untouched


def test_unknown_environment_names_the_defined_ones() -> None:
    project = parse({**BASE, "env": {"local": {"local": True}}})
    with pytest.raises(ConfigError) as info:
        project.env("prod")
    assert "env.prod: no such environment (defined: local)" in info.value.line()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"ap": {}}, "goship.toml: ap: unknown key; expected one of: app, build, run, proxy, "
                     "deploy, canary, docker, kubernetes, consul, metrics, logs, ci, windows, "
                     "secrets, processes, env; did you mean 'app'?"),
        (with_(canary={"steps": [50, 10]}), "canary.steps: expected rising weights"),
        (with_(canary={"id_header": "X User"}), "canary.id_header: expected an HTTP header"),
        ({}, "goship.toml: app: required key is missing"),
        (with_(app={"name": "shop", "nmae": "x"}), "app.nmae: unknown key"),
        (with_(run={"health": {"succeses": 3}}), "did you mean 'successes'?"),
        (with_(run={"instances": "two"}),
         "run.instances: expected an integer, found 'two' (string); write instances as a "
         "whole number without quotes"),
        (with_(run={"instances": 0}), "run.instances: expected greater than or equal to 1, "
                                      "found 0"),
        (with_(run={"drain_timeout": "10s"}), "run.drain_timeout: expected a number, found "
                                              "'10s' (string)"),
        (with_(run={"manager": "k8s"}),
         "run.manager: expected 'auto', 'systemd', 'supervisord' or 'docker', found 'k8s'"),
        (with_(build={"upx": "yes"}), "build.upx: expected true or false"),
        (with_(build={"targets": ["linux"]}), "build.targets[0]: expected OS/ARCH"),
        (with_(build={"targets": []}), "build.targets: "),
        (with_(deploy={"batch": "150%"}), "deploy.batch: expected a count >= 1 or a "
                                          "percentage like '25%', found '150%'"),
        (with_(deploy={"keep_releases": 1}), "deploy.keep_releases: expected greater than "
                                             "or equal to 2"),
        (with_(proxy={"tls": {"mode": "files"}}),
         "proxy.tls: mode = 'files' needs cert and key"),
        (with_(proxy={"tls": {"mode": "letsencrypt"}}), "needs email"),
        (with_(proxy={"trusted_proxies": ["10.0.0.0/33"]}), "expected an address or CIDR"),
        (with_(run={"health": {"path": "health"}}), "expected a URL path like /health"),
        (with_(app={"name": "shop", "stamp": {"version": "x"}}),
         "expected a Go variable as import/path.Name"),
        ({"app": {"name": "shop"}, "env": {"prod": {}}},
         "env.prod: expected exactly one of hosts, local = true, lab = N, kubernetes = ...; "
         "found none of them"),
        ({"app": {"name": "shop"}, "env": {"prod": {"local": True, "lab": 2}}},
         "found local, lab"),
        ({"app": {"name": "shop"}, "env": {"prod": {"lab": 21}}},
         "env.prod.lab: expected less than or equal to 20, found 21"),
        ({"app": {"name": "shop"}, "env": {"prod": {"local": True, "hostz": []}}},
         "env.prod.hostz: unknown key"),
        ({"app": {"name": "shop"}, "env": {"Prod!": {"local": True}}},
         "env.Prod!: expected an environment name"),
        ({"app": {"name": "shop"}, "env": {"prod": {"local": True, "run": {"instances": -1}}}},
         "env.prod.run.instances: expected greater than or equal to 1"),
        ({"app": {"name": "shop"}, "env": "prod"}, "env: expected tables [env.NAME]"),
    ],
)
def test_each_bad_value_gets_one_precise_line(raw: dict[str, Any], expected: str) -> None:
    lines = errors_of(raw)
    assert any(expected in line for line in lines), lines
    for line in lines:
        assert "\n" not in line
        assert line.startswith("goship.toml")


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (with_(app={"name": "shop; rm -rf /"}), "app.name"),
        (with_(app={"name": "../etc"}), "app.name"),
        (with_(app={"name": "Shop"}), "app.name"),
        (with_(run={"user": "root$(id)"}), "run.user"),
        (with_(run={"user": "-oops"}), "run.user"),
        (with_(run={"port_env": "PORT;ls"}), "run.port_env"),
        (with_(run={"env": {"A B": "x"}}), "run.env.A B"),
        (with_(run={"env_file": "../../etc/shadow"}), "run.env_file"),
        (with_(run={"env_file": "/etc/shadow"}), "run.env_file"),
        (with_(deploy={"base_path": "/srv/../etc"}), "deploy.base_path"),
        (with_(deploy={"base_path": "srv"}), "deploy.base_path"),
        (with_(deploy={"base_path": "/srv/a b"}), "deploy.base_path"),
        (with_(deploy={"base_path": "/"}), "deploy.base_path"),
        (with_(deploy={"base_path": "/srv/`id`"}), "deploy.base_path"),
        (with_(build={"assets": ["web/$(whoami)"]}), "build.assets[0]"),
        (with_(build={"assets": ["../secrets"]}), "build.assets[0]"),
        (with_(build={"tags": ["a b"]}), "build.tags[0]"),
        (with_(app={"name": "shop", "module_dir": "../other"}), "app.module_dir"),
        (with_(app={"name": "shop", "stamp": {"main.version": "$(id)"}}),
         "app.stamp.main.version"),
        (with_(app={"name": "shop", "version": "1.0 && id"}), "app.version"),
        (with_(proxy={"server_names": ["example.com;"]}), "proxy.server_names[0]"),
        (with_(proxy={"stream_paths": ["/../etc"]}), "proxy.stream_paths[0]"),
        (with_(proxy={"stream_paths": ["/events/./x"]}), "proxy.stream_paths[0]"),
        (with_(proxy={"static": [{"url": "/static/..", "dir": "static"}]}),
         "proxy.static[0].url"),
        (with_(metrics={"path": "/.."}), "metrics.path"),
        ({"app": {"name": "shop"}, "env": {"p": {"hosts": ["-oProxyCommand=id"]}}},
         "env.p.hosts[0]"),
        ({"app": {"name": "shop"}, "env": {"p": {"hosts": ["a@b;id"]}}}, "env.p.hosts[0]"),
        ({"app": {"name": "shop"}, "env": {"p": {"hosts": ["root@host:99999"]}}},
         "env.p.hosts[0]"),
        ({"app": {"name": "shop"}, "env": {"p": {"hosts": ["r$(id)@host"]}}},
         "env.p.hosts[0]"),
    ],
)
def test_hostile_values_are_refused_at_validation(raw: dict[str, Any], key: str) -> None:
    lines = errors_of(raw)
    assert any(f"goship.toml: {key}:" in line for line in lines), lines


@pytest.mark.parametrize("spec", ["app1", "deploy@app1.example.com", "deploy@10.0.0.5:2222",
                                  "[fe80::1]:22", "root@[::1]", "web-2"])
def test_good_host_specs_pass(spec: str) -> None:
    parse({**BASE, "env": {"p": {"hosts": [spec]}}})


def test_secret_values_never_appear_in_errors() -> None:
    lines = errors_of(with_(run={"env": {"DB_PASSWORD": 12345678}}))
    assert "12345678" not in "".join(lines)
    assert "run.env.DB_PASSWORD: expected a string, found '******'" in lines[0]


def test_env_error_points_at_the_base_when_the_base_is_wrong() -> None:
    lines = errors_of({"app": {"name": "shop"}, "run": {"instances": 0},
                       "env": {"p": {"local": True}}})
    assert lines == [line for line in lines if not line.startswith("goship.toml: env.")]
    assert any("goship.toml: run.instances" in line for line in lines)


def test_invalid_toml_names_the_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "goship.toml"
    path.write_text('[app]\nname = "shop"\ninstances = \n')
    with pytest.raises(ConfigError) as info:
        load(path)
    line = info.value.line()
    assert line.startswith(f"{path}: invalid TOML:")
    assert "line 3" in line


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "nope.toml")
    assert "file not found" in info.value.line()
    assert "goship init" in info.value.line()


def test_the_example_config_is_valid() -> None:
    from tests.conftest import EXAMPLE

    project = load(EXAMPLE / "goship.toml")
    assert project.base.app.name == "hello-gin"
    assert {"local", "lab"} <= set(project.envs)
    assert project.env("lab").target.lab == 2


def test_config_show_masks_credentials_inside_urls(tmp_path: Path, run_cli: Any) -> None:
    (tmp_path / "goship.toml").write_text(
        '[app]\nname = "shop"\n[run]\nenv_file = ".env"\n[run.env]\n'
        'DATABASE_URL = "postgres://u:pw-in-url@db/x"\n'
        'CACHE = "redis://:only-pass@cache:6379/0"\n'
        'UPSTREAMS = "http://a:s3cr%40t@one/,https://b:p2@two:8443/path?q=1"\n'
        'PLAIN = "https://example.com/a@b"\n')
    (tmp_path / ".env").write_text("FROM_FILE=file-secret\n")
    for fmt in ([], ["--json"]):
        r = run_cli("config", "show", *fmt, cwd=tmp_path)
        assert r.code == 0, r.err
        for secret in ("pw-in-url", "only-pass", "s3cr%40t", "p2@", "file-secret"):
            assert secret not in r.out, (fmt, secret)
        assert "postgres://u:****@db/x" in r.out
        assert "redis://:****@cache:6379/0" in r.out
        assert "http://a:****@one/" in r.out
        assert "https://b:****@two:8443/path?q=1" in r.out
        assert "https://example.com/a@b" in r.out  # no credentials: left as it is


def test_what_is_not_built_exits_3_as_readme_says(tmp_path: Path, run_cli: Any) -> None:
    r = run_cli("--config", str(EXAMPLE / "goship.toml"), "deploy", "lab", "--dry-run",
                "--canary")
    assert r.code == 3, r.err
    assert "not yet: goship deploy --dry-run --canary" in r.err
    (tmp_path / "goship.toml").write_text(
        '[app]\nname = "shop"\n[deploy]\nstrategy = "canary"\n[env.here]\nlocal = true\n')
    r = run_cli("deploy", "here", "--dry-run", cwd=tmp_path)
    assert r.code == 3, r.err
    assert "goship deploy ENV --canary" in r.err


def test_docs_say_what_is_not_built() -> None:
    doc = (REPO / "docs" / "config.md").read_text()
    strategy = next(line for line in doc.splitlines() if line.startswith("| `strategy`"))
    assert "deploy ENV --canary" in strategy


def test_a_nul_byte_in_an_environment_value_is_refused(write_toml: Any) -> None:
    from goship.config import load
    from goship.errors import ConfigErrors

    path = write_toml('[app]\nname = "shop"\n[run.env]\nTOKEN = "a\\u0000b"\n')
    with pytest.raises(ConfigErrors) as e:
        load(path)
    assert "run.env.TOKEN" in e.value.line()
    assert "NUL" in e.value.line()
