"""A Windows service for the app: nssm scripts, the sc.exe recovery actions, a WinSW XML
alternative, and a note for services that speak the service protocol themselves."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from goship import envquote
from goship.render.engine import render
from goship.render.inputs import RenderInput

# sc.exe failure: restart after 60 s twice, then after 60 s again; the count resets after a
# day without failures (Windows counts failures, not time since the last one).
RESET_SECONDS = 86400
ACTIONS = "restart/60000/restart/60000/restart/60000"


def render_windows(r: RenderInput) -> dict[str, str]:
    c = r.config
    service = c.windows.service or r.app
    base = c.windows.dir or f"C:\\goship\\{r.app}"
    exe = f"{c.app.binary_name}.exe"
    # Secrets stay out of the scripts and the XML: they belong in the env file on the host.
    env = {**r.public_env(), c.run.port_env: str(c.run.base_port)}
    values = dict(
        app=r.app, service=service, base=base, exe=exe, env=sorted(env.items()),
        drain_ms=int(c.run.drain_timeout * 1000), log_bytes=c.windows.log_bytes,
        log_files=c.windows.log_files, reset=RESET_SECONDS, actions=ACTIONS,
        env_file=c.run.env_file is not None, secret_names=sorted(r.secret_env()),
        drain_s=max(1, round(c.run.drain_timeout)),
    )
    return {
        "install-service.ps1": render("windows.install.ps1.j2", r.root, q=envquote.powershell,
                                      **values),
        "uninstall-service.ps1": render("windows.uninstall.ps1.j2", r.root, q=envquote.powershell,
                                        **values),
        f"{service}.xml": render("windows.winsw.xml.j2", r.root, x=quoteattr, **values),
        "README.md": render("windows.README.md.j2", r.root, **values),
    }
