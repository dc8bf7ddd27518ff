"""Push goship's image to a registry without a daemon, by digest, with the OCI distribution
API (blobs: HEAD, then POST + monolithic PUT; then the manifest), so hosts pull it by
digest ([docker] registry). Each blob and manifest is pushed once per process."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from goship.errors import ApplyError

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class Registry:
    host: str  # host[:port]
    repo: str  # path inside the registry
    insecure: bool  # plain HTTP

    @classmethod
    def parse(cls, value: str, insecure: bool) -> Registry:
        host, _, repo = value.partition("/")
        return cls(host, repo, insecure)

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


def read_layout(image_tar: bytes, digest: str | None = None) -> Layout:
    """The OCI layout inside goship's image tar: its manifest (the one of `digest` in a
    tar of several platforms, else the first) and the blobs it names."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(image_tar), mode="r:") as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isfile() else None
            if f is not None:
                files[m.name] = f.read()
    index = json.loads(files["index.json"])
    listed = [str(m["digest"]) for m in index["manifests"]]
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


def _call(method: str, url: str, data: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    # The URL is built from Registry.base: http or https only.
    req = urllib.request.Request(url, data=data, method=method,  # noqa: S310
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:  # noqa: S310
            return r.status, dict(r.headers.items())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items())
    except (urllib.error.URLError, OSError) as e:
        raise ApplyError(f"registry {url.split('/v2/')[0]}: {getattr(e, 'reason', e)}",
                         hint="check [docker] registry (and registry_insecure for plain "
                              "HTTP)") from None


def push(reg: Registry, image_tar: bytes, tag: str | None = None,
         digest: str | None = None) -> str:
    """Push the image (its manifest `digest` when the tar holds several platforms);
    returns its manifest digest (what hosts and nodes pull)."""
    lay = read_layout(image_tar, digest)
    with _lock:
        if (reg.base, lay.manifest_digest) in _pushed:
            return lay.manifest_digest
        for digest, blob in lay.blobs.items():
            status, _ = _call("HEAD", f"{reg.base}/blobs/{digest}")
            if status == 200:
                continue
            status, headers = _call("POST", f"{reg.base}/blobs/uploads/", b"")
            location = headers.get("Location") or headers.get("location")
            if status != 202 or not location:
                raise ApplyError(f"registry {reg.host}: starting an upload of {digest[:19]} "
                                 f"answered HTTP {status}")
            url = urllib.parse.urljoin(f"{reg.base}/", location)
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})
            status, _ = _call("PUT", url, blob, {"Content-Type": "application/octet-stream"})
            if status != 201:
                raise ApplyError(f"registry {reg.host}: blob {digest[:19]} answered HTTP "
                                 f"{status}")
        for ref in [lay.manifest_digest, *([tag] if tag else [])]:
            status, _ = _call("PUT", f"{reg.base}/manifests/{ref}", lay.manifest,
                              {"Content-Type": MT_MANIFEST})
            if status != 201:
                raise ApplyError(f"registry {reg.host}: manifest {ref} answered HTTP {status}")
        _pushed.add((reg.base, lay.manifest_digest))
    return lay.manifest_digest
