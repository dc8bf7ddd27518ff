"""Prometheus (scrape config over file_sd targets, recording and alert rules) and a Grafana
dashboard over the same recorded series. Release and track come from the target labels
that deploy keeps current in the file_sd file, so every panel can split by them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from goship.errors import ConfigError
from goship.render.context import ports
from goship.render.engine import render
from goship.render.inputs import RenderInput


def camel(app: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^a-z0-9]+", app) if part)


# Recorded series names, shared by the rules, the alerts and the dashboard.
SERIES = {
    "rate": "job_release_track:http_requests:rate5m",
    "errors": "job_release_track:http_errors:ratio_rate5m",
    **{f"p{q}": f"job_release_track:http_request_duration_seconds:p{q}_5m"
       for q in (50, 95, 99)},
}


def file_sd(r: RenderInput, live: dict[str, tuple[str, str]] | None = None
            ) -> list[dict[str, Any]]:
    """Prometheus file_sd groups: one per host, the live color's ports, labelled with the
    release and track. `live`: host -> (color, release); default blue and the version."""
    groups = []
    for host in r.hosts or ["127.0.0.1"]:
        color, release = (live or {}).get(host, ("blue", r.version))
        groups.append({
            "targets": [f"{host}:{p}" for p in ports(r.config, color)],
            "labels": {"env": r.env or "default", "release": release,
                       "track": "stable", "color": color},
        })
    return groups


def write_file_sd(path: Path, groups: list[dict[str, Any]]) -> None:
    """Atomically: Prometheus re-reads the file on change and must never see half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(groups, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
    except OSError as e:
        raise ConfigError("goship.toml", "metrics.file_sd",
                          f"cannot write {path}: {e.strerror or e}",
                          hint="point metrics.file_sd at a file in a writable directory") \
            from None


def render_prometheus(r: RenderInput) -> dict[str, str]:
    c = r.config
    m = c.metrics
    values = dict(
        app=r.app, camel=camel(r.app), m=m, s=SERIES, env=r.env or "default",
        requests=m.requests_metric, duration=m.duration_metric, status=m.status_label,
        p99_seconds=m.p99_ms / 1000, percent=f"{m.error_ratio * 100:g}",
    )
    return {
        "prometheus.yml": render("prometheus.yml.j2", r.root, **values),
        f"rules/{r.app}.rules.yml": render("prometheus.rules.yml.j2", r.root, **values),
        f"targets/{r.app}-{r.env or 'default'}.json":
            json.dumps(file_sd(r), indent=2, sort_keys=True) + "\n",
    }


def dashboard(r: RenderInput) -> dict[str, Any]:
    s = SERIES
    job = f'job="{r.app}"'

    def panel(pid: int, title: str, x: int, y: int, w: int, h: int, targets: list[
              tuple[str, str]], unit: str, kind: str = "timeseries") -> dict[str, Any]:
        return {
            "id": pid, "type": kind, "title": title,
            "datasource": {"type": "prometheus", "uid": "${DS_PROMETHEUS}"},
            "gridPos": {"x": x, "y": y, "w": w, "h": h},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {},
            "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend,
                         "datasource": {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}}
                        for i, (expr, legend) in enumerate(targets)],
        }

    by = "{{release}} {{track}}"
    panels = [
        panel(1, "Instances up", 0, 0, 6, 6,
              [(f"sum(up{{{job}}})", "up"), (f"count(up{{{job}}})", "expected")],
              "none", "stat"),
        panel(2, "Requests per second by release and track", 6, 0, 18, 6,
              [(f"sum by (release, track) ({s['rate']}{{{job}}})", by)], "reqps"),
        panel(3, "5xx ratio by release and track", 0, 6, 12, 8,
              [(f"max by (release, track) ({s['errors']}{{{job}}})", by)], "percentunit"),
        panel(4, "Latency p50 / p95 / p99 by release and track", 12, 6, 12, 8,
              [(f"max by (release, track) ({s[f'p{q}']}{{{job}}})", f"p{q} {by}")
               for q in (50, 95, 99)], "s"),
    ]
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                      "pluginId": "prometheus", "pluginName": "Prometheus"}],
        "title": f"{r.app} (goship)", "uid": f"goship-{r.app}"[:40],
        "tags": ["goship", r.app], "timezone": "browser", "schemaVersion": 39,
        "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []}, "annotations": {"list": []},
        "panels": panels,
    }


def render_grafana(r: RenderInput) -> dict[str, str]:
    return {f"{r.app}-dashboard.json": render("grafana.dashboard.json.j2", r.root,
                                              dashboard=dashboard(r))}
