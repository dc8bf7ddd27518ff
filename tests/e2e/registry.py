"""A real distribution registry (built from its Go module, cached by Go's build cache) on
a lab host, plain HTTP on port 5000: what `[docker] registry` pushes to, and what the lab's
Docker engines and containerd pull from (both trust plain HTTP on lab addresses)."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import need
from tests.e2e.conftest import Lab

MODULE = "github.com/distribution/distribution/v3/cmd/registry@v3.0.0"
CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/goship-registry
http:
  addr: :5000
"""


# With a login: distribution's htpasswd backend (bcrypt hashes), HTTP Basic on every call.
AUTH = """auth:
  htpasswd:
    realm: goship-lab
    path: /etc/goship-registry.htpasswd
"""


def serve(lab: Lab, gobin: Path, index: int = 3,
          login: tuple[str, str] | None = None) -> str:
    """Starts it on host h<index> (with `login`, (user, password), it refuses anyone
    else); returns its address (host:port) once it answers."""
    import bcrypt

    from goship.lab.layout import HostLayout

    subprocess.run([need("go"), "install", MODULE], check=True, timeout=900,
                   env={**os.environ, "GOBIN": str(gobin), "CGO_ENABLED": "0"})
    h = HostLayout(index)
    binary = h.root / "usr" / "local" / "bin" / "goship-registry"
    binary.write_bytes((gobin / "registry").read_bytes())
    binary.chmod(0o755)
    config = CONFIG
    if login is not None:
        user, password = login
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
        (h.root / "etc" / "goship-registry.htpasswd").write_text(f"{user}:{hashed}\n")
        config += AUTH
    (h.root / "etc" / "goship-registry.yml").write_text(config)
    start(lab, index)
    address = f"{h.addr}:5000"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as r:
                if r.status == 200:
                    return address
        except urllib.error.HTTPError as e:
            if e.code == 401 and login is not None:  # up, and asking for the login
                return address
            raise
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def start(lab: Lab, index: int = 3, check: bool = True) -> None:
    lab.ssh(f"h{index}", "systemd-run --unit=goship-registry /usr/local/bin/goship-registry "
                         "serve /etc/goship-registry.yml", check=check)


def stop(lab: Lab, index: int = 3, forget: bool = False) -> None:
    wipe = "; rm -rf /var/lib/goship-registry" if forget else ""
    lab.ssh(f"h{index}", f"systemctl stop goship-registry{wipe}", check=False)
