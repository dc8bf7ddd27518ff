"""The port-holder lookup a failed start names: `ss -ltnpH` output as data (captured on
this machine as root), the log lines that point at a port, and the one command."""

from __future__ import annotations

import pytest

from goship.deploy.holders import parse_ss, port_holders, ports_in_use_errors, ss_cmd
from goship.transport.base import Result
from goship.transport.fake import FakeTransport

# Real `ss -ltnpH` (iproute2 6.1), trailing blanks included: IPv4, IPv6 loopback, a dual-stack
# socket, nginx's master and worker on one port, and a socket whose owner ss cannot show.
SS = """\
LISTEN 0      511      0.0.0.0:10887 0.0.0.0:* users:(("nginx",pid=7350,fd=6),("nginx",pid=7349,fd=6))
LISTEN 0      128    127.0.0.1:18558 0.0.0.0:* users:(("python3",pid=7589,fd=4))                      
LISTEN 0      5      127.0.0.1:18555 0.0.0.0:* users:(("python3",pid=7588,fd=3))                      
LISTEN 0      128      0.0.0.0:2024  0.0.0.0:*                                                        
LISTEN 0      5          [::1]:18556    [::]:* users:(("python3",pid=7587,fd=3))                      
LISTEN 0      128            *:18557       *:* users:(("python3",pid=7589,fd=3))                      
LISTEN 0      4096           *:21273       *:* users:(("hello-local",pid=6740,fd=5))                  
"""  # noqa: E501, W291


def test_parse_ss_names_each_ports_process_and_pid() -> None:
    assert parse_ss(SS) == {
        10887: ("nginx", 7350),
        18558: ("python3", 7589),
        18555: ("python3", 7588),
        2024: (None, None),
        18556: ("python3", 7587),
        18557: ("python3", 7589),
        21273: ("hello-local", 6740),
    }


def test_parse_ss_of_nothing_listening() -> None:
    assert parse_ss("") == {}


@pytest.mark.parametrize(("log", "ports"), [
    ('2026/11/23 02:58:01 listen: listen tcp :8180: bind: address already in use', [8180]),
    ("listen tcp 0.0.0.0:9100: bind: address already in use", [9100]),
    ("listen tcp [::]:9101: bind: address already in use\nsecond line", [9101]),
    ('nginx: [emerg] bind() to 0.0.0.0:8800 failed (98: Address already in use)', [8800]),
    ("listening on :8180\nGET /health 200", []),
    ("OSError: [Errno 98] Address already in use", []),  # no port to look up
])
def test_ports_a_log_says_are_taken(log: str, ports: list[int]) -> None:
    assert ports_in_use_errors(log) == ports


def test_ss_filter_is_one_argument_per_expression() -> None:
    assert ss_cmd([8180, 8181]).argv == ("ss", "-ltnpH", "( sport = :8180 or sport = :8181 )")


def test_port_holders_names_a_foreign_holder_and_not_the_apps_own() -> None:
    held = "\n".join(SS.splitlines()[1:3]) + "\n"
    t = FakeTransport("h1", {"ss -ltnpH": Result(0, held, "")})
    lines = port_holders(t, [18559, 18555, 18558, 18555], exclude={7589})
    assert lines == ["port 18555 is held by python3 (pid 7588)"]
    assert t.calls == [ss_cmd([18555, 18558, 18559])]  # one command for every port
    assert port_holders(t, []) == []
    assert len(t.calls) == 1


def test_a_systemd_gate_failure_says_the_log_and_the_holder() -> None:
    import tomllib

    from goship.config.model import Config
    from goship.deploy.layout import Paths
    from goship.deploy.services import Systemd

    config = Config.model_validate(tomllib.loads('[app]\nname = "shop"\n[run]\n'
                                                 'base_port = 9000\n'))
    log = ('{"level":"INFO","msg":"listening","port":"9100"}\n'
           '{"level":"ERROR","msg":"listen failed","err":"listen tcp :9100: bind: address '
           'already in use"}\n')
    ss = 'LISTEN 0 4096 *:9100 *:* users:(("prometheus-node",pid=312,fd=3))\n'
    t = FakeTransport("h1", {
        "journalctl": Result(0, log, ""),
        "systemctl show": Result(0, "MainPID=0\nActiveState=activating\n", ""),
        "ss -ltnpH": Result(0, ss, ""),
    })
    why = Systemd(t, config, Paths("/srv", "shop")).why("green")
    assert why == ('log: {"level":"INFO","msg":"listening","port":"9100"} | '
                   '{"level":"ERROR","msg":"listen failed","err":"listen tcp :9100: bind: '
                   'address already in use"}; port 9100 is held by prometheus-node (pid 312)')
    # The app's own running instance on a port is never named as the holder.
    t.answers["systemctl show"] = Result(0, "MainPID=312\nActiveState=active\n", "")
    assert "held by" not in Systemd(t, config, Paths("/srv", "shop")).why("green")
