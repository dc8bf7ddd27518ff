"""A registry that needs a login, as data and against a local HTTP server speaking the
distribution API's challenges: HTTP Basic (distribution with htpasswd) and the token flow
(Docker Hub, GHCR, Harbor). The real registry with htpasswd is in the lab tests
(tests/e2e/test_k8s_deploy.py, tests/e2e/test_docker_registry.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from goship.deploy import registry
from goship.deploy.docker import release_image
from goship.deploy.registry import Credentials, Registry, credentials, dockerconfigjson, push
from goship.errors import ApplyError, ConfigErrors, UsageError
from goship.kube import plan
from tests.unit.test_docker_services import archive, config

USER, PASSWORD = "ci-bot", "pa$$ w0rd'\"`"


@dataclass
class Server:
    """A registry: `scheme` is what its 401 asks for ("basic" or "bearer")."""
    scheme: str
    password: str = PASSWORD
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, auth
    scopes: list[str] = field(default_factory=list)  # what the token service was asked
    port: int = 0

    def authorized(self, auth: str) -> bool:
        if self.scheme == "basic":
            return auth == _basic(USER, self.password)
        return auth == "Bearer tok-" + USER


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    state = Server(request.param)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_a: Any) -> None:
            pass

        def _answer(self, code: int, headers: dict[str, str] | None = None,
                    body: bytes = b"") -> None:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _any(self) -> None:
            auth = self.headers.get("Authorization", "")
            url = urlparse(self.path)
            state.seen.append((self.command, url.path, auth))
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if url.path == "/token":  # the token service: Basic in, a token out
                state.scopes.append(parse_qs(url.query).get("scope", [""])[0])
                if auth != _basic(USER, state.password):
                    return self._answer(401)
                return self._answer(200, body=json.dumps({"token": f"tok-{USER}"}).encode())
            if not state.authorized(auth):
                challenge = ('Basic realm="registry"' if state.scheme == "basic" else
                             f'Bearer realm="http://127.0.0.1:{state.port}/token",'
                             'service="registry",scope="repository:team/shop:pull,push"')
                # Go servers (distribution) spell it Www-Authenticate
                name = "Www-Authenticate" if state.scheme == "basic" else "WWW-Authenticate"
                return self._answer(401, {name: challenge})
            if self.command == "HEAD":
                return self._answer(404)
            if self.command == "POST":
                return self._answer(202, {"Location": "/v2/team/shop/blobs/uploads/u1"})
            return self._answer(201)

        do_GET = do_HEAD = do_POST = do_PUT = _any

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    registry._authorized.clear()
    registry._pushed.clear()
    yield state
    httpd.shutdown()
    registry._authorized.clear()
    registry._pushed.clear()


def image() -> bytes:
    return release_image("shop", "r1", archive()).data


def reg(server: Server, login: Credentials | None) -> Registry:
    return Registry.parse(f"127.0.0.1:{server.port}/team/shop", True, login)


@pytest.mark.parametrize("server", ["basic", "bearer"], indirect=True)
def test_the_push_answers_the_registrys_challenge_and_keeps_what_worked(
        server: Server) -> None:
    digest = push(reg(server, Credentials(USER, PASSWORD)), image(), tag="r1")
    assert digest.startswith("sha256:")
    sent = [(m, p) for m, p, a in server.seen if server.authorized(a)]
    # every blob and both manifest names went through with the credentials
    assert ("PUT", f"/v2/team/shop/manifests/{digest}") in sent
    assert ("PUT", "/v2/team/shop/manifests/r1") in sent
    # one challenge, then the header that worked on every later request
    refused = [x for x in server.seen if x[1] != "/token" and not server.authorized(x[2])]
    assert len(refused) == 1, refused
    if server.scheme == "bearer":
        assert server.scopes == ["repository:team/shop:pull,push"]


@pytest.mark.parametrize("server", ["basic", "bearer"], indirect=True)
def test_refused_credentials_name_the_user_never_the_password(server: Server) -> None:
    with pytest.raises(ApplyError) as e:
        push(reg(server, Credentials(USER, "wrong")), image())
    text = f"{e.value} {e.value.hint}"
    assert f"refused the credentials of {USER}" in text
    assert "wrong" not in text
    assert "registry_password_var" in text
    assert not any(m == "PUT" for m, _, _ in server.seen)  # nothing was pushed


@pytest.mark.parametrize("server", ["basic"], indirect=True)
def test_a_registry_that_needs_a_login_without_one_says_what_to_set(server: Server) -> None:
    with pytest.raises(ApplyError) as e:
        push(reg(server, None), image())
    assert "needs a login (HTTP 401" in str(e.value)
    assert "docker.registry_username" in str(e.value.hint)


def test_the_password_comes_from_goships_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    d = config({"registry": "ghcr.io/team/shop", "registry_username": USER,
                "registry_password_var": "REGISTRY_PASSWORD"}).docker
    monkeypatch.delenv("REGISTRY_PASSWORD", raising=False)
    with pytest.raises(UsageError) as e:
        credentials(d)
    assert "REGISTRY_PASSWORD is not set in goship's environment" in str(e.value)
    monkeypatch.setenv("REGISTRY_PASSWORD", PASSWORD)
    login = credentials(d)
    assert login == Credentials(USER, PASSWORD)
    assert PASSWORD not in repr(login)  # a traceback or a log of it shows the user only
    assert credentials(config({"registry": "ghcr.io/team/shop"}).docker) is None


@pytest.mark.parametrize(("docker", "message"), [
    ({"registry": "ghcr.io/t/a", "registry_username": USER}, "go together"),
    ({"registry": "ghcr.io/t/a", "registry_password_var": "P"}, "go together"),
    ({"registry_username": USER, "registry_password_var": "P"}, "registry, which is not set"),
    ({"registry": "ghcr.io/t/a", "registry_username": "bot;rm -rf /",
      "registry_password_var": "P"}, "expected a registry user name"),
    ({"registry": "ghcr.io/t/a", "registry_username": "bot\nX: y",
      "registry_password_var": "P"}, "expected a registry user name"),
])
def test_a_half_or_hostile_login_is_refused_at_validation(docker: dict[str, str],
                                                          message: str) -> None:
    with pytest.raises(ConfigErrors, match=message):
        config(docker)


def test_harbor_robots_and_gcr_keys_are_user_names() -> None:
    for user in ("robot$team+ci", "_json_key", "me@example.com"):
        d = config({"registry": "h.example.com/t/a", "registry_username": user,
                    "registry_password_var": "P"}).docker
        assert d.registry_username == user


def test_the_pull_secret_is_what_docker_login_writes() -> None:
    doc = json.loads(dockerconfigjson("ghcr.io", Credentials(USER, PASSWORD)))
    entry = doc["auths"]["ghcr.io"]
    assert (entry["username"], entry["password"]) == (USER, PASSWORD)
    assert base64.b64decode(entry["auth"]).decode() == f"{USER}:{PASSWORD}"


def test_a_kept_replicaset_that_pulls_with_the_secret_keeps_it() -> None:
    rs = {"spec": {"template": {"spec": {"imagePullSecrets": [{"name": "shop-registry"}],
                                         "containers": [{"name": "shop"}]}}}}
    assert plan.env_references([rs]) == {("Secret", "shop-registry")}
    assert plan.unused_env([("Secret", "shop-registry")], [rs]) == []


def test_pods_pull_with_the_secret_deploy_applies_and_a_render_never_holds_it(
        tmp_path: Any) -> None:
    import yaml

    from goship.config.load import load as load_project
    from goship.render.inputs import RenderInput
    from goship.render.kubernetes import render_kubernetes

    (tmp_path / "goship.toml").write_text(
        '[app]\nname = "shop"\n[docker]\nregistry = "ghcr.io/team/shop"\n'
        f'registry_username = "{USER}"\nregistry_password_var = "REGISTRY_PASSWORD"\n'
        '[env.k]\nkubernetes = "lab"\n')
    cfg = load_project(tmp_path / "goship.toml").env("k").config
    auth = dockerconfigjson("ghcr.io", Credentials(USER, PASSWORD))
    plain = render_kubernetes(RenderInput(config=cfg, root=tmp_path, env="k"))
    assert "registry.yaml" not in plain  # `goship render`: the reference only
    pod = yaml.safe_load(plain["deployment.yaml"])["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "shop-registry"}]
    deployed = render_kubernetes(RenderInput(config=cfg, root=tmp_path, env="k",
                                             registry_auth=auth))
    secret = yaml.safe_load(deployed["registry.yaml"])
    assert (secret["type"], secret["metadata"]["name"]) == (
        "kubernetes.io/dockerconfigjson", "shop-registry")
    assert json.loads(secret["stringData"][".dockerconfigjson"]) == json.loads(auth)
    assert [n for n, _ in plan.applied(deployed)].index("registry.yaml") < \
        [n for n, _ in plan.applied(deployed)].index("deployment.yaml")
    assert not [n for n, text in deployed.items() if PASSWORD in text and n != "registry.yaml"]


@pytest.mark.parametrize("server", ["basic"], indirect=True)
def test_several_platforms_are_pushed_with_the_index_that_names_them(
        server: Server, tmp_path: Any) -> None:
    from goship.build.archive import Entry
    from goship.build.gitinfo import Stamp
    from goship.build.oci import ImageInput, build_image
    from goship.deploy.registry import push_index, read_index

    inputs = [ImageInput(app="shop", arch=arch, binary=Entry("shop", b"ELF-" + arch.encode(),
                                                              0o755),
                         assets=[], port=8080, port_env="PORT", env={})
              for arch in ("amd64", "arm64")]
    img = build_image(inputs, Stamp("v1", "abc", 0, False), tmp_path / "image.tar")
    data = img.path.read_bytes()
    digest = push_index(reg(server, Credentials(USER, PASSWORD)), data, tag="v1")
    index = read_index(data)
    manifests = index.manifests
    assert sorted(manifests) == sorted(img.digests.values())
    assert json.loads(index.data)["mediaType"] == "application/vnd.oci.image.index.v1+json"
    put = [p for m, p, a in server.seen if m == "PUT" and server.authorized(a)]
    for d in manifests:  # each platform's manifest before the index that names it
        assert put.index(f"/v2/team/shop/manifests/{d}") < put.index(
            f"/v2/team/shop/manifests/{digest}")
    assert "/v2/team/shop/manifests/v1" in put
    assert digest == index.digest == "sha256:" + hashlib.sha256(index.data).hexdigest()


def test_blue_green_applies_the_pull_secret_with_the_new_color_before_the_switch() -> None:
    before = list(plan.BEFORE_SWITCH)
    assert before.index("registry.yaml") < before.index("deployment.yaml")
    assert "registry.yaml" not in plan.SWITCHED
    # together, every rendered file goship applies, each once
    assert sorted(before + list(plan.SWITCHED)) == sorted(plan.APPLIED)


@pytest.mark.parametrize("server", ["basic", "bearer"], indirect=True)
def test_doctor_says_whether_the_registry_takes_the_login(
        server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from goship.config.load import load as load_project
    from goship.doctor import registry_check

    def check(login: bool) -> Any:
        keys = ('registry_username = "ci-bot"\nregistry_password_var = "REGISTRY_PASSWORD"\n'
                if login else "")
        (tmp_path / "goship.toml").write_text(
            '[app]\nname = "shop"\n[docker]\n'
            f'registry = "127.0.0.1:{server.port}/team/shop"\nregistry_insecure = true\n'
            f'{keys}[env.k]\nkubernetes = "lab"\n')
        registry._authorized.clear()
        return registry_check(load_project(tmp_path / "goship.toml").env("k"))

    monkeypatch.setenv("REGISTRY_PASSWORD", PASSWORD)
    ok = check(login=True)
    assert (ok.level, ok.detail) == ("ok", f"127.0.0.1:{server.port}: login as ci-bot accepted")
    monkeypatch.setenv("REGISTRY_PASSWORD", "wrong")
    refused = check(login=True)
    assert refused.level == "fail"
    assert "refused the credentials of ci-bot" in refused.detail
    assert "wrong" not in refused.line()
    monkeypatch.delenv("REGISTRY_PASSWORD")
    unset = check(login=True)
    assert (unset.level, unset.fix) == ("fail", "export REGISTRY_PASSWORD=... (in CI, from "
                                        "its secret store) before goship runs")
    anonymous = check(login=False)
    assert anonymous.level == "fail"
    assert anonymous.detail.startswith(f"registry 127.0.0.1:{server.port} needs a login")
