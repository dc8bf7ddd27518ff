"""Deploy with TLS (a certificate on the hosts), static files served by nginx from the
live release, and Prometheus targets that follow every release: on lab hosts."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path

import pytest

from tests.conftest import CliResult, need
from tests.e2e.conftest import Lab
from tests.e2e.helpers import Project

pytestmark = [pytest.mark.lab, pytest.mark.slow]
Run = Callable[..., CliResult]
H1, H2 = "10.78.0.11", "10.78.0.12"
NAME = "shop.lab.test"
CERT_DIR = "/etc/goship-test-tls"

TOML = f"""
[app]
name = "tlsshop"
version = "git"

[app.stamp]
"main.version" = "{{version}}"

[build]
assets = ["templates", "static"]

[run]
base_port = 9300
drain_timeout = 3.0

[run.health]
interval = 0.2

[proxy]
server_names = ["{NAME}"]

[[proxy.static]]
url = "/static/"
dir = "static"
expires = "1d"

[proxy.tls]
mode = "files"
cert = "{CERT_DIR}/cert.pem"
key = "{CERT_DIR}/key.pem"

[metrics]
file_sd = "prometheus/targets/tlsshop-lab.json"

[env.lab]
lab = 2
"""


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def get(url: str, host: str = NAME) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with repeated ones joined by ", ", body)."""
    """A request with the site's Host header; the throwaway certificate is not verified."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=ctx))
    req = urllib.request.Request(url, headers={"Host": host})
    def joined(msg: Message) -> dict[str, str]:
        return {k: ", ".join(msg.get_all(k) or []) for k in set(msg.keys())}

    try:
        with opener.open(req, timeout=5) as r:
            return r.status, joined(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, joined(e.headers), e.read()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[Project]:
    p = Project(tmp_path_factory.mktemp("tls") / "tlsshop", TOML)
    (p.root / ".gitignore").write_text("dist/\nprometheus/\n")
    (p.root / "static" / "style.css").write_text("/* v1 */\n")
    p.release("v1.0.0")
    yield p
    lab.remove_app("tlsshop", ("h1", "h2"), CERT_DIR)


def deploy(run_cli: Run, project: Project, *args: str) -> CliResult:
    return run_cli("deploy", *args, "--skip-checks", cwd=project.root)


def test_a_missing_certificate_stops_the_deploy_before_anything_changes(
        run_cli: Run, project: Project, lab: Lab) -> None:
    for h in ("h1", "h2"):
        lab.ssh(h, f"rm -rf {CERT_DIR}")
    r = deploy(run_cli, project, "lab")
    assert r.code != 0
    assert f"h1: TLS certificate missing on the host: {CERT_DIR}/cert.pem, " \
        f"{CERT_DIR}/key.pem; copy it there or fix proxy.tls.cert" in r.out + r.err
    assert "restore" not in r.out + r.err  # nothing was started, so nothing to undo
    for h in ("h1", "h2"):
        assert lab.ssh(h, "test -e /srv/tlsshop", check=False).returncode != 0
        assert lab.ssh(h, "test -e /etc/nginx/conf.d/goship-tlsshop.conf",
                       check=False).returncode != 0


def test_https_static_files_and_prometheus_targets(run_cli: Run, project: Project,
                                                   lab: Lab, tmp_path: Path) -> None:
    need("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={NAME}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    for h in ("h1", "h2"):
        lab.ssh(h, f"install -d -m 700 {CERT_DIR} && cat > {CERT_DIR}/cert.pem <<'EOF'\n"
                   f"{cert.read_text()}EOF\ncat > {CERT_DIR}/key.pem <<'EOF'\n"
                   f"{key.read_text()}EOF\nchmod 600 {CERT_DIR}/key.pem")
    r = deploy(run_cli, project, "lab")
    assert r.code == 0, r.out + r.err
    # plain HTTP redirects to HTTPS; HTTPS serves the app with HSTS
    code, headers, _ = get(f"http://{H1}/version")
    assert code == 301
    assert headers["Location"] == f"https://{NAME}/version"
    code, headers, body = get(f"https://{H1}/version")
    assert code == 200
    assert json.loads(body)["version"] == "v1.0.0"
    assert headers["Strict-Transport-Security"] == "max-age=63072000"
    # the ACME challenge is answered from the webroot over plain HTTP, never redirected
    lab.ssh("h1", "mkdir -p /var/www/goship-acme/.well-known/acme-challenge && "
                  "echo token-123 > /var/www/goship-acme/.well-known/acme-challenge/t1")
    code, _, body = get(f"http://{H1}/.well-known/acme-challenge/t1")
    assert (code, body) == (200, b"token-123\n")
    # static files come from nginx (the app sets no Expires) out of the live release
    code, headers, body = get(f"https://{H2}/static/style.css")
    assert code == 200
    assert body == b"/* v1 */\n"
    assert "Expires" in headers
    assert headers["Cache-Control"] == "max-age=86400, public"
    targets = project.root / "prometheus" / "targets" / "tlsshop-lab.json"
    groups = json.loads(targets.read_text())
    assert [g["targets"] for g in groups] == [[f"{H1}:9300"], [f"{H2}:9300"]]
    assert groups[0]["labels"]["release"].startswith("v1.0.0-")
    assert groups[0]["labels"]["color"] == "blue"

    # the next release: new static content, targets on the other color
    (project.root / "static" / "style.css").write_text("/* v2 */\n")
    project.release("v2.0.0")
    r = deploy(run_cli, project, "lab")
    assert r.code == 0, r.out + r.err
    assert get(f"https://{H1}/static/style.css")[2] == b"/* v2 */\n"
    groups = json.loads(targets.read_text())
    assert [g["targets"] for g in groups] == [[f"{H1}:9400"], [f"{H2}:9400"]]
    assert groups[1]["labels"]["release"].startswith("v2.0.0-")
    # a rollback moves both back: the files and the targets
    r = run_cli("rollback", "lab", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert get(f"https://{H1}/static/style.css")[2] == b"/* v1 */\n"
    groups = json.loads(targets.read_text())
    assert groups[0]["targets"] == [f"{H1}:9300"]
    assert groups[0]["labels"]["release"].startswith("v1.0.0-")
