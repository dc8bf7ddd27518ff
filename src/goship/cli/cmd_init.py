"""goship init [DIR]"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from goship.ui import ui


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing goship.toml.")
@click.option("--main", "main_pkg", help="Main package dir when there are several, e.g. "
              "cmd/server.")
@click.option("--name", help="App name (default: the last element of the module path).")
@click.option("--stdout", "to_stdout", is_flag=True, help="Print instead of writing the file.")
def init(directory: Path, force: bool, main_pkg: str | None, name: str | None,
         to_stdout: bool) -> None:
    """Read the Go project in DIR and write a commented goship.toml.

    Reads the code the main package is built from (go list -deps): the health route, how
    the port is set (flag, env var, config file, hard-coded), the serve subcommand, config
    files, data dirs, cgo, generated embeds, -X flags, version variables and SIGTERM
    handling, and prints each fact with its certainty and where it was found
    (docs/init.md).

    \b
    Example:
      goship init                      # in the project directory
      goship init ../shop --main cmd/api
    """
    from goship import goproject, initfile
    from goship.config import parse
    from goship.config.validators import app_name

    if name is not None:
        try:
            app_name(name)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--name") from None
    root = directory.resolve()
    ins = goproject.inspect(root, main_pkg)
    if main_pkg is None and len(ins.mains) > 1 and sys.stdin.isatty() and ui.verbosity >= 0:
        chosen = click.prompt("Several main packages; which one is the service?",
                              type=click.Choice(ins.mains), default=ins.main)
        ins = goproject.inspect(root, chosen)
    elif len(ins.mains) > 1:
        ui.info(f"several main packages ({', '.join(ins.mains)}); chose {ins.main} "
                "(use --main to pick another)")
    result = initfile.render(ins, name)
    import tomllib

    parse(tomllib.loads(result.text))  # what init writes must always validate
    if to_stdout:
        ui.out(result.text.rstrip())
    else:
        target = root / "goship.toml"
        initfile.write(target, result.text, force=force)
        ui.out(f"wrote {target}")
    for line in initfile.facts_table(ins):
        ui.info(line)
    for w in result.warnings:
        ui.warn(w)
