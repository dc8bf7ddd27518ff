"""The pyinfra way to ship the same release (bench/suite.py runs it against lab hosts):
the same steps as bench/ansible/deploy.yml."""

from io import StringIO

from pyinfra import host
from pyinfra.operations import files, server, systemd

base = "/srv/bench-pyinfra"
release = host.data.release
port = host.data.port
binary = host.data.binary

files.directory(name="release directory", path=f"{base}/releases/{release}")
files.put(name="copy the archive", src=host.data.archive, dest=f"{base}/{release}.tar.gz")
server.shell(name="unpack it",
             commands=[f"tar -xzf {base}/{release}.tar.gz -C {base}/releases/{release}"])
files.link(name="point current at it", path=f"{base}/current",
           target=f"{base}/releases/{release}")
files.put(name="install the unit", dest="/etc/systemd/system/bench-pyinfra.service",
          src=StringIO(f"""[Unit]
Description=bench: hello-gin deployed by pyinfra
After=network.target

[Service]
WorkingDirectory={base}/current
ExecStart={base}/current/{binary}
Environment=PORT={port}
Restart=always

[Install]
WantedBy=multi-user.target
"""))
systemd.service(name="restart", service="bench-pyinfra", restarted=True, daemon_reload=True)
server.shell(name="wait for health", commands=[
    f"for i in $(seq 1 60); do curl -fs http://127.0.0.1:{port}/health && exit 0; "
    "sleep 0.5; done; exit 1"])
