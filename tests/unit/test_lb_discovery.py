"""The load balancer that discovers (proxy.lb.discovery = "consul") as data: what its nginx
site and Lua render, what is refused, what goes on which balancer host and how it is
installed through a transport (the token never in a command line or in output). Real nginx
and Consul run it in tests/e2e/test_lb_consul.py."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from goship.command import Cmd
from goship.config import parse
from goship.config.load import Environment, Project
from goship.deploy import lb
from goship.errors import ApplyError, ConfigError, ConfigErrors
from goship.render import lb as render_lb
from goship.render.context import lua_string
from goship.render.inputs import RenderInput
from goship.render.kinds import render_kind
from goship.transport.base import Result
from goship.transport.fake import FakeTransport
from tests.conftest import CliResult

Run = Callable[..., CliResult]
TOKEN = "b1gs3cr3t-7a5e-4c1d-9f00-token"


def project(lb_over: dict[str, Any] | None = None, *, target: dict[str, Any] | None = None,
            **sections: Any) -> Project:
    raw: dict[str, Any] = {"app": {"name": "shop"},
                           "proxy": {"lb": {"discovery": "consul", **(lb_over or {})}},
                           "env": {"p": target or {"lab": 2}}, **sections}
    return parse(raw, path=Path("/nonexistent/goship.toml"))


def env(lb_over: dict[str, Any] | None = None, **kw: Any) -> Environment:
    return project(lb_over, **kw).env("p")


def site(lb_over: dict[str, Any] | None = None, **sections: Any) -> str:
    e = env(lb_over, **sections)
    return render_kind("lb", RenderInput(config=e.config, root=Path("/nonexistent"),
                                         version="v1", env="p"))["goship-shop-lb.conf"]


# ---- what renders ----------------------------------------------------------------------
def test_consul_discovery_reads_the_health_api_in_one_worker_never_per_request() -> None:
    conf = site()
    assert "lua_shared_dict goship_shop_lb 1m;" in conf
    # blocking queries for the passing instances, from the local agent by default
    assert 'local host, port, path = "127.0.0.1", 8500, ' + lua_string(
        "/v1/health/service/shop?passing=true&stale&tag=track%3Dstable") in conf
    assert '"&wait=", wait, "s&index=", index' in conf
    assert "X-Consul-Index" in conf.replace("[Xx]%-[Cc]onsul%-[Ii]ndex", "X-Consul-Index")
    init_worker = conf[conf.index("init_worker_by_lua_block"):conf.index("upstream goship_")]
    assert "if id ~= nil and id ~= 0 then return end" in init_worker  # worker 0 polls
    assert "ngx.timer.at(0, poll)" in init_worker
    # an error keeps the list (only a good answer sets "peers")
    failed = init_worker[init_worker.index("local function failed"):]
    assert 'dict:set("peers"' not in failed[:failed.index("local poll")]
    # the balancer picks from the dict; no static server, no reload needed to change them
    upstream = conf[conf.index("upstream goship_shop_hosts"):conf.index("server {")]
    assert "server 0.0.0.1;" in upstream
    assert "balancer_by_lua_block" in upstream
    assert "balancer.set_more_tries(#peers - 1)" in upstream
    assert "socket" not in upstream  # nothing asks Consul per request
    assert re.search(r"server \d+\.\d+\.\d+\.\d+:\d+ ", conf) is None
    assert "proxy_next_upstream error timeout http_502 http_503 http_504;" in conf
    assert "init_by_lua_block" not in conf  # no token: nothing to read as root
    assert "access_log /var/log/nginx/goship-shop-lb.access.log goship_shop_lb;" in conf
    assert "location = /.goship/lb {\n        allow 127.0.0.1;" in conf


@pytest.mark.parametrize(("balance", "pick"), [
    ("least_conn", 'dict:incr("c." .. pick, 1, 0)'),
    ("round_robin", 'pool[((dict:incr("rr", 1, 0) or 0) % #pool) + 1]'),
    ("ip_hash", "ngx.crc32_short(ngx.var.remote_addr)"),
    ("random", "pool[math.random(#pool)]"),
])
def test_each_balance_is_its_own_pick(balance: str, pick: str) -> None:
    conf = site({"balance": balance})
    assert pick in conf
    # only least_conn counts requests in flight (and gives them back when logged)
    assert ("log_by_lua_block" in conf) == (balance == "least_conn")


def test_max_fails_and_fail_timeout_mark_a_failing_instance_in_the_dict() -> None:
    conf = site({"max_fails": 2, "fail_timeout": "1500ms"})
    assert 'dict:incr("f." .. last, 1, 0, 1.5)' in conf
    assert '(dict:get("f." .. p) or 0) < 2 or 2 == 0' in conf


def test_an_agent_elsewhere_and_the_token_file() -> None:
    conf = site({"consul": "10.0.0.7:8501"}, consul={"token_env": "CONSUL_HTTP_TOKEN"})
    assert 'local host, port, path = "10.0.0.7", 8501,' in conf
    init = conf[conf.index("init_by_lua_block"):conf.index("init_worker_by_lua_block")]
    assert 'io.open("/etc/nginx/goship-shop-lb.token", "r")' in init
    assert 'package.loaded["goship_shop_lb_token"] = token' in init
    assert '"X-Consul-Token: " .. token' in conf


def test_static_discovery_is_unchanged_by_consul_keys() -> None:
    e = parse({"app": {"name": "shop"}, "env": {"p": {"hosts": ["10.0.0.1", "10.0.0.2"]}}},
              path=Path("/nonexistent/goship.toml")).env("p")
    conf = render_lb.site(e.config, ["10.0.0.1", "10.0.0.2"], "p", None)
    assert "server 10.0.0.1:80 max_fails=3 fail_timeout=10s;" in conf
    assert "lua" not in conf


@pytest.mark.parametrize("value", ['a"b', "x\ny", "back\\slash", "]]--", "ünï",
                                   "tag=track%3Dstable"])
def test_lua_strings_cannot_be_ended_early(value: str) -> None:
    from goship.render.context import lua_string

    lit = lua_string(value)
    inner = lit[1:-1]
    assert lit[0] == lit[-1] == '"'
    assert '"' not in inner
    assert "\n" not in inner
    # three digits each: a digit after an escape (%3D) cannot extend it
    assert re.fullmatch(r"([A-Za-z0-9._\-/:+@~,]|\\\d{3})*", inner)
    # decoding the decimal escapes gives the value back
    raw = re.sub(rb"\\(\d{3})", lambda m: bytes([int(m.group(1))]), inner.encode())
    assert raw.decode() == value


def test_seconds() -> None:
    assert [render_lb.seconds(d) for d in ("10s", "500ms", "2m", "1h")] == [10, 0.5, 120, 3600]


# ---- what is refused -------------------------------------------------------------------
def test_weights_mean_nothing_with_consul() -> None:
    with pytest.raises(ConfigErrors) as e:
        env({"weights": {"10.0.0.1": 2}})
    assert "proxy.lb" in e.value.line()
    assert 'with discovery = "consul" every passing instance counts once' in e.value.line()


@pytest.mark.parametrize("agent", ["consul.internal:8500"])
def test_an_agent_by_name_is_refused_since_lua_has_no_resolver(agent: str) -> None:
    with pytest.raises(ConfigError) as e:
        site({"consul": agent})
    assert e.value.line().startswith("goship.toml: proxy.lb.consul: consul.internal:8500 is "
                                     "not an IP address")


@pytest.mark.parametrize(("key", "value"), [
    ("consul", "127.0.0.1:8500\nx"), ("consul", '127.0.0.1";os.exit()--:1'),
    ("discovery", "dns"), ("hosts", ["h3", "h3"]), ("hosts", ["-oProxyCommand=x"]),
])
def test_hostile_or_wrong_values_fail_at_load(key: str, value: Any) -> None:
    with pytest.raises(ConfigErrors) as e:
        env({key: value})
    assert "proxy.lb" in e.value.line()


@pytest.mark.parametrize(("target", "hosts", "listen", "says"), [
    ({"lab": 2}, ["10.0.0.9"], 80, "'10.0.0.9' is not a lab host"),
    ({"lab": 2}, ["h2"], 80, "h2 also serves the app on port 80"),
    ({"hosts": ["a.example", "b.example"]}, ["b.example"], 80,
     "b.example also serves the app on port 80"),
    ({"local": True}, ["h3"], 80, "env.p deploys to local"),
])
def test_balancer_hosts_the_environment_cannot_hold(target: dict[str, Any], hosts: list[str],
                                                    listen: int, says: str) -> None:
    e = env({"hosts": hosts, "listen": listen}, target=target)
    with pytest.raises(ConfigError) as err:
        lb.check_hosts(e)
    assert err.value.line().startswith("goship.toml: env.p.proxy.lb.hosts: ")
    assert says in err.value.line()


def test_an_app_host_may_balance_on_another_port() -> None:
    lb.check_hosts(env({"hosts": ["h2"], "listen": 8080}))


# ---- the plan: what goes where ---------------------------------------------------------
def test_the_plan_puts_the_site_on_each_balancer_host() -> None:
    p = project({"hosts": ["h3", "h4"]})
    hosts = lb.plan(p, p.env("p"), ["10.78.0.11", "10.78.0.12"], {})
    assert [h.spec for h in hosts] == ["h3", "h4"]
    for h in hosts:
        assert [(f.path, f.mode) for f in h.files] == [
            ("/etc/nginx/conf.d/goship-shop-lb.conf", "644")]
        assert "balancer_by_lua_block" in h.files[0].text
        assert h.move_default_site  # no server_names: the balancer is the default server
    assert lb.plan(project(), project().env("p"), [], {}) == []  # no hosts: render only


def test_the_plan_with_a_token_adds_a_0600_file_and_never_shows_it() -> None:
    p = project({"hosts": ["h3"], "server_names": ["shop.example"]},
                consul={"token_env": "CONSUL_HTTP_TOKEN"})
    [h] = lb.plan(p, p.env("p"), [], {"CONSUL_HTTP_TOKEN": TOKEN})
    assert [(f.path, f.mode) for f in h.files] == [
        ("/etc/nginx/conf.d/goship-shop-lb.conf", "644"),
        ("/etc/nginx/goship-shop-lb.token", "600")]
    assert h.files[1].text == TOKEN + "\n"
    assert TOKEN not in repr(h)
    assert not h.move_default_site
    assert TOKEN not in h.files[0].text  # the site names the file, never the token


@pytest.mark.parametrize(("values", "says"), [
    ({}, "CONSUL_HTTP_TOKEN is not set by run.env_file or [secrets]"),
    ({"CONSUL_HTTP_TOKEN": "abc\nX-Evil: 1"}, "does not look like a Consul token"),
])
def test_a_missing_or_hostile_token_is_refused(values: dict[str, str], says: str) -> None:
    p = project({"hosts": ["h3"]}, consul={"token_env": "CONSUL_HTTP_TOKEN"})
    with pytest.raises(ConfigError) as e:
        lb.plan(p, p.env("p"), [], values)
    assert e.value.line().startswith("goship.toml: consul.token_env: ")
    assert says in e.value.line()
    assert "X-Evil" not in e.value.line()


# ---- applying it through a transport ---------------------------------------------------
def answers(nginx_t: Result | None = None) -> dict[str, Any]:
    return {
        "grep -q default_server": Result(1, "", ""),
        "cat ": Result(0, "old site\n", ""),
        "goship-install": Result(0, "changed\n", ""),
        "nginx -t": nginx_t or Result(0, "", "test is successful"),
        "systemctl is-active": Result(0, "", ""),
        "systemctl reload nginx": Result(0, "", ""),
    }


def token_host() -> lb.LbHost:
    p = project({"hosts": ["h3"]}, consul={"token_env": "CONSUL_HTTP_TOKEN"})
    [h] = lb.plan(p, p.env("p"), [], {"CONSUL_HTTP_TOKEN": TOKEN})
    return h


def shown(calls: list[Cmd]) -> str:
    return "\n".join([c.display() for c in calls] + [" ".join(c.full_argv()) for c in calls])


def test_apply_installs_tests_then_reloads_and_the_token_stays_off_argv() -> None:
    t = FakeTransport("h3", answers())
    said = lb.apply_host(t, token_host())
    assert said == ("balancer /etc/nginx/conf.d/goship-shop-lb.conf, "
                    "/etc/nginx/goship-shop-lb.token")
    steps = [c.shell() for c in t.calls]
    installs = [c for c in t.calls if "goship-install" in c.shell()]
    assert [c.argv[-3:-1] for c in installs] == [
        ("/etc/nginx/conf.d/goship-shop-lb.conf", "644"), ("/etc/nginx/goship-shop-lb.token",
                                                           "600")]
    assert installs[1].stdin == (TOKEN + "\n").encode()  # on stdin only
    assert TOKEN not in shown(t.calls)
    assert not any(s.startswith("cat ") and "token" in s for s in steps)  # never read back
    order = [next(i for i, s in enumerate(steps) if s.startswith(w))
             for w in ("nginx -t", "systemctl reload nginx")]
    assert order == sorted(order)
    assert order[0] > steps.index(installs[1].shell())


def test_a_site_nginx_refuses_is_taken_back_and_nothing_reloads() -> None:
    refused = Result(1, "", "nginx: [emerg] unknown directive \"balancer_by_lua_block\" in "
                            "/etc/nginx/conf.d/goship-shop-lb.conf:60\nnginx: configuration "
                            "file /etc/nginx/nginx.conf test failed")
    t = FakeTransport("h3", answers(refused))
    with pytest.raises(ApplyError) as e:
        lb.apply_host(t, token_host())
    assert e.value.message == ('h3: nginx -t rejected the balancer, the old config is back in '
                               'place: unknown directive "balancer_by_lua_block" in '
                               '/etc/nginx/conf.d/goship-shop-lb.conf:60')
    installs = [c for c in t.calls if "goship-install" in c.shell()]
    assert installs[-1].argv[-3] == "/etc/nginx/conf.d/goship-shop-lb.conf"
    assert installs[-1].stdin == b"old site\n"
    assert not any("reload" in c.shell() for c in t.calls)
    assert TOKEN not in shown(t.calls) + str(e.value)


def test_unchanged_files_reload_nothing() -> None:
    t = FakeTransport("h3", {**answers(), "goship-install": Result(0, "same\n", "")})
    assert lb.apply_host(t, token_host()) == "balancer unchanged"
    assert not any(c.shell().startswith(("nginx", "systemctl")) for c in t.calls)


def test_the_default_site_claiming_default_server_is_moved_aside() -> None:
    t = FakeTransport("h3", {**answers(), "grep -q default_server": Result(0, "", ""),
                             "mv ": Result(0, "", "")})
    p = project({"hosts": ["h3"]})
    [h] = lb.plan(p, p.env("p"), [], {})
    lb.apply_host(t, h)
    assert "mv /etc/nginx/sites-enabled/default /etc/nginx/goship-default-site.off" in \
        [c.shell() for c in t.calls]


# ---- the CLI ---------------------------------------------------------------------------
def test_render_lb_with_consul_needs_no_hosts(run_cli: Run, tmp_path: Path) -> None:
    (tmp_path / "goship.toml").write_text('[app]\nname = "shop"\n[proxy.lb]\n'
                                          'discovery = "consul"\n')
    r = run_cli("render", "lb", cwd=tmp_path)
    assert r.code == 0, r.err
    assert "balancer_by_lua_block" in r.out


def test_deploy_refuses_a_bad_balancer_host_before_anything(run_cli: Run,
                                                            tmp_path: Path) -> None:
    (tmp_path / "goship.toml").write_text(
        '[app]\nname = "shop"\n[env.lab]\nlab = 2\n[env.lab.proxy.lb]\nhosts = ["lb1"]\n')
    for argv in (("deploy", "lab"), ("setup", "lab")):
        r = run_cli(*argv, cwd=tmp_path)
        assert r.code == 2, r.out + r.err
        assert r.err.strip().splitlines() == [
            "goship: goship.toml: env.lab.proxy.lb.hosts: 'lb1' is not a lab host; a lab "
            'environment names them h1..h20; e.g. hosts = ["h3"]']


# ---- the ACL token on deploy's agent calls ---------------------------------------------
def curl_config_values(text: str) -> dict[str, str]:
    """curl's config syntax (`name = "quoted"`, \\ and \" escapes) read back."""
    out = {}
    for line in text.splitlines():
        name, _, quoted = line.partition(" = ")
        assert quoted[0] == quoted[-1] == '"', line
        out[name] = re.sub(r'\\(.)', r"\1", quoted[1:-1])
    return out


def test_a_token_goes_to_curl_as_its_config_on_stdin_never_in_argv() -> None:
    from goship.deploy import consul

    c = project(consul={"enabled": True, "token_env": "CONSUL_HTTP_TOKEN"}).env("p").config
    [register, _] = consul.plan_register(c, release="r1", color="blue", ports=[9000],
                                         address="10.0.0.1")
    cmd = consul.command("127.0.0.1:8500", register, TOKEN)
    odd = consul.Call("PUT", "/v1/x", {"quote": 'a"b', "slash": "c\\d", "nl": "e\nf"})
    odd_sent = consul.command("127.0.0.1:8500", odd, TOKEN).stdin
    assert odd_sent is not None
    assert odd_sent.decode().count("\n") == 2  # one line per option, whatever the body
    assert json.loads(curl_config_values(odd_sent.decode())["data-binary"]) == odd.body
    assert TOKEN not in " ".join(cmd.full_argv())
    assert TOKEN not in cmd.display()
    assert cmd.argv[-3:] == ("-K", "-", "http://127.0.0.1:8500/v1/agent/service/register")
    assert cmd.stdin is not None
    sent = curl_config_values(cmd.stdin.decode())
    assert sent["header"] == f"X-Consul-Token: {TOKEN}"
    assert json.loads(sent["data-binary"]) == register.body
    # without a token, as before: the body alone on stdin
    plain = consul.command("127.0.0.1:8500", register)
    assert "-K" not in plain.argv
    assert plain.stdin is not None
    assert json.loads(plain.stdin) == register.body


def test_an_agent_echoing_the_token_never_shows_it() -> None:
    from goship.deploy import consul

    c = project(consul={"enabled": True, "token_env": "CONSUL_HTTP_TOKEN"}).env("p").config
    calls = consul.plan_register(c, release="r1", color="blue", ports=[9000], address=None)
    t = FakeTransport("h1", {"curl": Result(22, f"ACL not found: {TOKEN}", "")})
    with pytest.raises(ApplyError) as e:
        consul.apply(t, "127.0.0.1:8500", calls, "registration", TOKEN)
    assert TOKEN not in str(e.value) + e.value.message
    assert "ACL not found: ***" in e.value.message


@pytest.mark.parametrize(("values", "says"), [
    ({}, "CONSUL_HTTP_TOKEN is not set by run.env_file or [secrets]"),
    ({"CONSUL_HTTP_TOKEN": "x y"}, "does not look like a Consul token"),
])
def test_deploy_refuses_a_missing_token_before_anything(values: dict[str, str],
                                                        says: str) -> None:
    p = project(consul={"enabled": True, "token_env": "CONSUL_HTTP_TOKEN"})
    with pytest.raises(ConfigError) as e:
        lb.check(p, p.env("p"), values)
    assert says in e.value.line()


def test_status_doctor_and_remove_read_the_agent_with_the_token_off_argv() -> None:
    from goship.deploy import consul

    agent = "127.0.0.1:8500"
    reads = [consul.services_query(agent, TOKEN), consul.health_query(agent, "shop-blue-9000",
                                                                      TOKEN),
             *consul.agent_queries(agent, TOKEN)]
    for cmd in reads:
        assert TOKEN not in " ".join(cmd.full_argv())
        assert TOKEN not in cmd.display()
        assert cmd.argv[-3:-1] == ("-K", "-")
        assert cmd.stdin is not None
        assert curl_config_values(cmd.stdin.decode()) == {
            "header": f"X-Consul-Token: {TOKEN}"}
    # status reads the code after the body, and does not fail on 404 (not registered)
    health = consul.health_query(agent, "shop-blue-9000", TOKEN)
    assert "--fail-with-body" not in health.argv
    assert health.argv[-1] == (f"http://{agent}/v1/agent/health/service/id/shop-blue-9000"
                               "?format=text")
    # without a token: nothing on stdin, the URL last
    plain = consul.services_query(agent)
    assert plain.stdin is None
    assert plain.argv[-1] == f"http://{agent}/v1/agent/services"


def test_a_redis_canary_host_cannot_also_run_the_consul_balancer() -> None:
    e = env({"hosts": ["h2"], "listen": 8080},
            canary={"state": "redis", "redis": "redis://10.0.0.5:6379/0"})
    with pytest.raises(ConfigError) as err:
        lb.check_hosts(e)
    assert "h2 serves the app with canary.state = \"redis\"" in err.value.line()
    assert "one init_worker_by_lua per host" in err.value.line()
    # on its own host, fine
    lb.check_hosts(env({"hosts": ["h3"]},
                       canary={"state": "redis", "redis": "redis://10.0.0.5:6379/0"}))
