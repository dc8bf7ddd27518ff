"""Checks for values that end up in file names, unit names, user names and remote commands.

Hostile values (shell metacharacters, path traversal, option injection) stop here, at
validation; remote commands quote their arguments anyway.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import PurePosixPath

APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,46}[a-z0-9]$|^[a-z]$")
USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")
ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SAFE_PATH = re.compile(r"^[A-Za-z0-9._/@+-]+$")
# -X import/path.name: Go import paths and an identifier
STAMP_VAR = re.compile(r"^[A-Za-z0-9._~/-]+\.[A-Za-z_][A-Za-z0-9_]*$")
STAMP_VALUE = re.compile(r"^[A-Za-z0-9._:+@/{}-]*$")
SERVER_NAME = re.compile(r"^(_|\*\.[a-z0-9.-]+|[a-z0-9]([a-z0-9.-]*[a-z0-9])?(\.\*)?)$")
HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^[A-Za-z0-9]$")
IPV6 = re.compile(r"^[0-9A-Fa-f:.%a-z]+$")
TARGET = re.compile(r"^[a-z0-9]+/[a-z0-9]+$")
SIZE = re.compile(r"^[0-9]+[kKmMgG]?$")
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
URL_PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")
DURATION = re.compile(r"^[0-9]+(ms|s|m|h|d)$")
IMAGE = re.compile(r"^([a-z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._/-][a-z0-9]+)*"
                   r"(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(@sha256:[0-9a-f]{64})?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|Ki|Mi|Gi)?$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9._:/=+-]{0,128}$")
WINDOWS_DIR = re.compile(r"^[A-Za-z]:\\[A-Za-z0-9 ._\\-]*$")
URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/-]*)?$")
HOST_PORT = re.compile(r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")


def app_name(v: str) -> str:
    if not APP_NAME.match(v):
        raise ValueError(
            f"expected lowercase letters, digits and '-' (starting with a letter, at most 48), "
            f"found {v!r}"
        )
    return v


def user_name(v: str) -> str:
    if not USER_NAME.match(v):
        raise ValueError(
            f"expected a Unix user name (lowercase letters, digits, '_' or '-'), found {v!r}"
        )
    return v


def env_var(v: str) -> str:
    if not ENV_VAR.match(v):
        raise ValueError(f"expected an environment variable name like PORT, found {v!r}")
    return v


def relative_path(v: str) -> str:
    """A path inside the project: relative, no '..', no shell metacharacters."""
    if not v or not SAFE_PATH.match(v):
        raise ValueError(
            f"expected a relative path of letters, digits and ._/@+- only, found {v!r}"
        )
    p = PurePosixPath(v)
    if p.is_absolute():
        raise ValueError(f"expected a path relative to the project, found absolute {v!r}")
    if ".." in p.parts:
        raise ValueError(f"expected a path inside the project, found {v!r} (contains '..')")
    return v


def absolute_path(v: str) -> str:
    """A path on a host: absolute, normalised, no '..', no shell metacharacters."""
    if not v or not SAFE_PATH.match(v):
        raise ValueError(
            f"expected an absolute path of letters, digits and ._/@+- only, found {v!r}"
        )
    p = PurePosixPath(v)
    if not p.is_absolute():
        raise ValueError(f"expected an absolute path, found {v!r}")
    if ".." in p.parts:
        raise ValueError(f"expected a path without '..', found {v!r}")
    if str(p) == "/":
        raise ValueError("expected a directory below /, found '/'")
    return str(p)


def host_spec(v: str) -> str:
    """`user@host:port`, `host`, `[v6]:port` or an ssh-config alias. Never starts with '-'
    (that would be an ssh option)."""
    user, host, port = split_host(v)
    if user is not None and not USER_NAME.match(user):
        raise ValueError(f"expected user@host[:port], found a bad user name in {v!r}")
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"expected a port from 1 to 65535, found {v!r}")
    ok = HOSTNAME.match(host) or (v.count("[") == 1 and IPV6.match(host))
    if not ok:
        raise ValueError(f"expected user@host[:port] or an ssh config alias, found {v!r}")
    return v


def split_host(v: str) -> tuple[str | None, str, str | None]:
    user: str | None = None
    rest = v
    if "@" in rest:
        user, rest = rest.split("@", 1)
    port: str | None = None
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        if tail.startswith(":"):
            port = tail[1:]
        elif tail:
            port = "x"
    elif rest.count(":") == 1:
        host, port = rest.split(":")
    else:
        host = rest
    return user, host, port


def server_name(v: str) -> str:
    if not SERVER_NAME.match(v):
        raise ValueError(f"expected a host name like example.com or *.example.com, found {v!r}")
    return v


def stamp_var(v: str) -> str:
    if not STAMP_VAR.match(v):
        raise ValueError(
            f"expected a Go variable as import/path.Name (e.g. main.version), found {v!r}"
        )
    return v


def stamp_value(v: str) -> str:
    if not STAMP_VALUE.match(v):
        raise ValueError(
            "expected letters, digits, ._:+@/- and {version} {commit} {build_time} "
            f"placeholders, found {v!r}"
        )
    return v


def target(v: str) -> str:
    if not TARGET.match(v):
        raise ValueError(f"expected OS/ARCH like linux/amd64, found {v!r}")
    return v


def size(v: str) -> str:
    if not SIZE.match(v):
        raise ValueError(f"expected a size like 10m or 512k, found {v!r}")
    return v


def _match(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def check(v: str) -> str:
        if not pattern.match(v):
            raise ValueError(f"expected {what}, found {v!r}")
        return v
    return check


email = _match(EMAIL, "an e-mail address like ops@example.com")
def url_path(value: str) -> str:
    # A `.` or `..` segment would let a location or a static alias reach outside its tree.
    if not URL_PATH.match(value) or any(seg in (".", "..") for seg in value.split("/")):
        raise ValueError(f"expected a URL path like /events (letters, digits, ._~/-, no . "
                         f"or .. segment), found {value!r}")
    return value
duration = _match(DURATION, "a duration like 500ms, 10s, 1m, 2h or 7d")
image = _match(IMAGE, "an image reference like registry.example.com/team/app:1.2.3")
dns_label = _match(DNS_LABEL, "a Kubernetes name (lowercase letters, digits, '-', max 63)")
quantity = _match(QUANTITY, "a Kubernetes quantity like 100m, 0.5, 128Mi or 1Gi")
label_value = _match(LABEL_VALUE, "letters, digits and ._:/=+- only (max 128)")
windows_dir = _match(WINDOWS_DIR, "a Windows directory like C:\\goship\\app (no quotes)")
url = _match(URL, "an http(s) URL like http://es.internal:9200")
host_port = _match(HOST_PORT, "host:port like logs.internal:514")
