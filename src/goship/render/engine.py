"""Strict template rendering. A project overrides any template by putting a file of the
same name in goship/templates/ next to goship.toml."""

from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path
from typing import Any

from goship import envquote
from goship.errors import ConfigError

OVERRIDE_DIR = Path("goship") / "templates"


@functools.lru_cache(maxsize=8)
def _environment(overrides: Path | None) -> Any:
    """One Jinja environment per override directory: it keeps each compiled template (a
    switch renders the nginx site two or three times; compiling it costs ~15 ms) and
    reloads a template whose file changed."""
    from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined

    loaders: list[Any] = []
    if overrides is not None:
        loaders.append(FileSystemLoader(overrides))
    loaders.append(PackageLoader("goship", "templates/render"))
    env = Environment(loader=ChoiceLoader(loaders), undefined=StrictUndefined,
                      keep_trailing_newline=True, trim_blocks=False,
                      autoescape=False)  # noqa: S701 (config files, not HTML)
    # Quoting for each syntax that carries an environment value (goship/envquote.py).
    env.filters.update(systemd_env=envquote.systemd, dockerfile_env=envquote.dockerfile,
                       sh_quote=envquote.sh, supervisord_env=envquote.supervisord,
                       ps_quote=envquote.powershell)
    return env


def warm(*names: str) -> None:
    """Import Jinja and compile templates ahead of their first use (a deploy starts this in
    a thread while it waits for its hosts to answer). Templates a project overrides are
    compiled when first used."""
    from jinja2 import TemplateError

    env = _environment(None)
    for name in names:
        with contextlib.suppress(TemplateError):
            env.get_template(name)


def render(name: str, project_root: Path | None = None, **context: Any) -> str:
    from jinja2 import TemplateError, TemplateSyntaxError

    overrides = None
    if project_root is not None and (project_root / OVERRIDE_DIR).is_dir():
        overrides = (project_root / OVERRIDE_DIR).resolve()
    env = _environment(overrides)
    try:
        return str(env.get_template(name).render(**context))
    except TemplateSyntaxError as e:
        raise ConfigError(f"{e.filename or name}:{e.lineno}", "", f"template error: {e.message}",
                          hint="fix the template override or remove it") from None
    except TemplateError as e:
        raise ConfigError(f"{name}:{_line(name)}", "", f"template error: {e}",
                          hint="a variable the template uses does not exist; see "
                          "docs/render.md for the ones that do") from None


def _line(name: str) -> int | str:
    """The template line being rendered when the error happened, from the traceback."""
    tb = sys.exc_info()[2]
    line: int | str = "?"
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(name):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
