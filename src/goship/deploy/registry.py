"""Push goship's image to a registry without a daemon, by digest, with the OCI distribution
API (blobs: HEAD, then POST + monolithic PUT; then the manifest), so hosts pull it by
digest ([docker] registry). Each blob and manifest is pushed once per process.

A registry that answers 401 gets the credentials of [docker] registry_username and
registry_password_var: HTTP Basic when it asks for Basic (distribution with htpasswd), or
the token flow when it asks for Bearer (Docker Hub, GHCR, Harbor, distribution with a
token server): the realm gives a token for the scope it named, and the request is sent
again with it. The password is never printed; an error names the user only."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import tarfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from goship.errors import ApplyError, UsageError

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Registry:
    host: str  # host[:port]
    repo: str  # path inside the registry
    insecure: bool  # plain HTTP
    login: Credentials | None = None

    @classmethod
    def parse(cls, value: str, insecure: bool, login: Credentials | None = None) -> Registry:
        host, _, repo = value.partition("/")
        return cls(host, repo, insecure, login)

    @property
    def base(self) -> str:
        return f"{'http' if self.insecure else 'https'}://{self.host}/v2/{self.repo}"

    def ref(self, digest: str) -> str:
        return f"{self.host}/{self.repo}@{digest}"


@dataclass(frozen=True)
class Layout:
    manifest_digest: str
    manifest: bytes
    blobs: dict[str, bytes]  # digest -> bytes (config and layers)


@dataclass(frozen=True)
class Index:
    """The image tar's index.json, as it is (what a multi-platform push sends)."""
    data: bytes

    @property
    def manifests(self) -> list[str]:
        return [str(m["digest"]) for m in json.loads(self.data).get("manifests", [])]

    @property
    def digest(self) -> str:
        """What the pods pin for several platforms: each node's runtime picks its own."""
        return "sha256:" + hashlib.sha256(self.data).hexdigest()


def _files(image_tar: bytes) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(image_tar), mode="r:") as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isfile() else None
            if f is not None:
                files[m.name] = f.read()
    return files


def read_index(image_tar: bytes) -> Index:
    return Index(_files(image_tar)["index.json"])


def read_layout(image_tar: bytes, digest: str | None = None) -> Layout:
    """The OCI layout inside goship's image tar: its manifest (the one of `digest` in a
    tar of several platforms, else the first) and the blobs it names."""
    return _layout(_files(image_tar), digest)


def _layout(files: dict[str, bytes], digest: str | None) -> Layout:
    listed = Index(files["index.json"]).manifests
    if digest is None:
        digest = listed[0]
    elif digest not in listed:
        raise ApplyError(f"the image has no manifest {digest[:19]} (it has "
                         f"{', '.join(d[:19] for d in listed)})")
    manifest = files[f"blobs/sha256/{digest[7:]}"]
    doc = json.loads(manifest)
    named = [doc["config"]["digest"], *(x["digest"] for x in doc["layers"])]
    return Layout(digest, manifest, {d: files[f"blobs/sha256/{d[7:]}"] for d in named})


_pushed: set[tuple[str, str]] = set()
_lock = threading.Lock()
# The Authorization header that worked, per registry: one token round trip per process.
_authorized: dict[str, str] = {}


def credentials(docker: Any) -> Credentials | None:
    """[docker] registry_username, and its password from goship's environment (a CI
    secret, `export REGISTRY_PASSWORD=...`): None for a registry without a login."""
    if docker.registry_username is None:
        return None
    var = docker.registry_password_var
    password = os.environ.get(var, "")
    if not password:
        raise UsageError(f"docker.registry_password_var = {var!r}: {var} is not set in "
                         "goship's environment",
                         hint=f"export {var}=... (in CI, from its secret store) before "
                              "goship runs")
    return Credentials(docker.registry_username, password)


def dockerconfigjson(host: str, login: Credentials) -> str:
    """What `docker login` writes and a kubernetes.io/dockerconfigjson Secret holds."""
    return json.dumps({"auths": {host: {
        "username": login.username, "password": login.password,
        "auth": login.basic().split(" ", 1)[1]}}}, sort_keys=True)


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="...",scope="..."` -> ("bearer", {realm: ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


def _token(reg: Registry, params: dict[str, str]) -> str:
    """The token flow: the realm answers a GET (with the user's Basic credentials) with a
    JSON `token` (or `access_token`) for the service and scope it named."""
    assert reg.login is not None  # noqa: S101 (only called with credentials)
    realm = params.get("realm", "")
    if not realm.startswith(("https://", "http://")):
        raise ApplyError(f"registry {reg.host}: its token realm {realm!r} is not a URL")
    query = {k: v for k, v in params.items() if k in ("service", "scope")}
    url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
    req = urllib.request.Request(url, headers={"Authorization": reg.login.basic()})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise ApplyError(f"registry {reg.host}: its token service refused the credentials "
                         f"of {reg.login.username} (HTTP {e.code})",
                         hint="check docker.registry_username and the password in "
                              "docker.registry_password_var") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ApplyError(f"registry {reg.host}: its token service {realm}: "
                         f"{getattr(e, 'reason', e)}") from None
    token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
    if not token:
        raise ApplyError(f"registry {reg.host}: its token service answered no token")
    return f"Bearer {token}"


def _send(method: str, url: str, data: bytes | None,
          headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    # The URL is built from Registry.base: http or https only.
    req = urllib.request.Request(url, data=data, method=method,  # noqa: S310
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:  # noqa: S310
            return r.status, {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        # names in lower case: Go servers send Www-Authenticate, others WWW-Authenticate
        return e.code, {k.lower(): v for k, v in e.headers.items()}
    except (urllib.error.URLError, OSError) as e:
        raise ApplyError(f"registry {url.split('/v2/')[0]}: {getattr(e, 'reason', e)}",
                         hint="check [docker] registry (and registry_insecure for plain "
                              "HTTP)") from None


def _call(reg: Registry, method: str, url: str, data: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    """One request, authorized as the registry asks: on a 401, the credentials go with
    it (Basic, or a token fetched for the scope the challenge names) and it is sent
    again; the header that worked is used for the requests after it."""
    sent = dict(headers or {})
    if reg.base in _authorized:
        sent["Authorization"] = _authorized[reg.base]
    status, got = _send(method, url, data, sent)
    if status != 401:
        return status, got
    challenge = got.get("www-authenticate", "")
    if reg.login is None:
        raise ApplyError(f"registry {reg.host} needs a login (HTTP 401 on {method} "
                         f"{url.split('/v2/', 1)[-1]})",
                         hint="set docker.registry_username and docker.registry_password_var")
    scheme, params = _challenge(challenge)
    if scheme == "basic":
        auth = reg.login.basic()
    elif scheme == "bearer":
        auth = _token(reg, params)
    else:
        raise ApplyError(f"registry {reg.host}: it asks for {challenge or 'nothing'!r}, "
                         "neither Basic nor Bearer")
    status, got = _send(method, url, data, {**sent, "Authorization": auth})
    if status == 401:
        raise ApplyError(f"registry {reg.host} refused the credentials of "
                         f"{reg.login.username} (HTTP 401)",
                         hint="check docker.registry_username and the password in "
                              "docker.registry_password_var")
    _authorized[reg.base] = auth
    return status, got


def push(reg: Registry, image_tar: bytes, tag: str | None = None,
         digest: str | None = None) -> str:
    """Push the image (its manifest `digest` when the tar holds several platforms);
    returns its manifest digest (what hosts and nodes pull)."""
    return _push_layout(reg, read_layout(image_tar, digest), tag)


def _push_layout(reg: Registry, lay: Layout, tag: str | None) -> str:
    with _lock:
        if (reg.base, lay.manifest_digest) in _pushed:
            return lay.manifest_digest
        for digest, blob in lay.blobs.items():
            status, _ = _call(reg, "HEAD", f"{reg.base}/blobs/{digest}")
            if status == 200:
                continue
            status, headers = _call(reg, "POST", f"{reg.base}/blobs/uploads/", b"")
            location = headers.get("location")
            if status != 202 or not location:
                raise ApplyError(f"registry {reg.host}: starting an upload of {digest[:19]} "
                                 f"answered HTTP {status}")
            url = urllib.parse.urljoin(f"{reg.base}/", location)
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})
            status, _ = _call(reg, "PUT", url, blob, {"Content-Type": "application/octet-stream"})
            if status != 201:
                raise ApplyError(f"registry {reg.host}: blob {digest[:19]} answered HTTP "
                                 f"{status}")
        for ref in [lay.manifest_digest, *([tag] if tag else [])]:
            status, _ = _call(reg, "PUT", f"{reg.base}/manifests/{ref}", lay.manifest,
                              {"Content-Type": MT_MANIFEST})
            if status != 201:
                raise ApplyError(f"registry {reg.host}: manifest {ref} answered HTTP {status}")
        _pushed.add((reg.base, lay.manifest_digest))
    return lay.manifest_digest


def push_index(reg: Registry, image_tar: bytes, tag: str | None = None) -> str:
    """Every platform's image (blobs and manifest, by digest), then the index naming them
    all; returns the index's digest, which a node of any of those platforms pulls (its
    runtime picks its own manifest from the index). The tar is read once."""
    files = _files(image_tar)
    index = Index(files["index.json"])
    for digest in index.manifests:
        _push_layout(reg, _layout(files, digest), None)
    with _lock:
        for ref in [index.digest, *([tag] if tag else [])]:
            status, _ = _call(reg, "PUT", f"{reg.base}/manifests/{ref}", index.data,
                              {"Content-Type": MT_INDEX})
            if status != 201:
                raise ApplyError(f"registry {reg.host}: index {ref} answered HTTP {status}")
    return index.digest


def check_login(reg: Registry) -> str:
    """`goship doctor`: the registry's API root from this machine, with the login when it
    asks for one; what it said (raises ApplyError when it cannot be used)."""
    scheme = "http" if reg.insecure else "https"
    status, _ = _call(reg, "GET", f"{scheme}://{reg.host}/v2/")
    if not 200 <= status < 300:
        raise ApplyError(f"registry {reg.host}: /v2/ answered HTTP {status}")
    if reg.base in _authorized and reg.login is not None:
        return f"{reg.host}: login as {reg.login.username} accepted"
    return f"{reg.host}: answers, no login asked"
