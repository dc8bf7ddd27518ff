"""Log shipping: Filebeat (to Elasticsearch), rsyslog (forwarding, checkable here with
`rsyslogd -N1`) and logrotate for the files goship's own nginx writes."""

from __future__ import annotations

from goship.render.engine import render
from goship.render.inputs import RenderInput


def render_logs(r: RenderInput) -> dict[str, str]:
    c = r.config
    p = r.paths
    values = dict(
        app=r.app, access_log=f"/var/log/nginx/goship-{r.app}.access.log",
        own_access_log=p.join("logs", "access.log"), own_error_log=p.join("logs",
                                                                        "nginx.error.log"),
        app_logs=p.join("logs", f"{r.app}-*.log"), pid_file=p.join("run", "nginx.pid"),
        units=[f"{r.app}-blue", f"{r.app}-green"], es=c.logs.elasticsearch,
        forward=c.logs.forward, keep=c.logs.keep_days, env=r.env or "default",
    )
    out = {
        "filebeat.yml": render("filebeat.yml.j2", r.root, **values),
        f"rsyslog/60-goship-{r.app}.conf": render("rsyslog.conf.j2", r.root, **values),
        f"logrotate/goship-{r.app}": render("logrotate.j2", r.root, **values),
    }
    return out
