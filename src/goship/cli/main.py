"""Entry point. Imports stay light here so `goship --version` starts fast: every command
imports what it needs when it runs."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

from goship import __version__
from goship.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, ExitCode, GoshipError
from goship.ui import ui

# goship's config models use no pydantic plugin: without this, pydantic reads every installed
# package's entry points at the first model (tens of ms of every command's start-up).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class LazyGroup(click.Group):
    """Subcommands live in their own modules and load only when called or listed."""

    def __init__(self, *args: object, lazy: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module_name, _, attr = self.lazy[cmd_name].partition(":")
            module = __import__(module_name, fromlist=[attr])
            command: click.Command = getattr(module, attr)
            return command
        return super().get_command(ctx, cmd_name)


COMMANDS = {
    "init": "goship.cli.cmd_init:init",
    "doctor": "goship.cli.cmd_doctor:doctor",
    "config": "goship.cli.cmd_config:config",
    "lab": "goship.cli.cmd_lab:lab",
    "build": "goship.cli.cmd_build:build",
    "package": "goship.cli.cmd_build:package",
    "render": "goship.cli.cmd_render:render",
    "setup": "goship.cli.cmd_deploy:setup",
    "deploy": "goship.cli.cmd_deploy:deploy",
    "rollback": "goship.cli.cmd_deploy:rollback",
    "status": "goship.cli.cmd_deploy:status",
    "logs": "goship.cli.cmd_deploy:logs",
    "canary": "goship.cli.cmd_canary:canary",
    "remove": "goship.cli.cmd_remove:remove",
    "maintenance": "goship.cli.cmd_maintenance:maintenance",
    "apps": "goship.cli.cmd_apps:apps",
}


def exit_codes_epilog() -> str:
    """The exit codes, from the one list of them (ExitCode); \b keeps click from rewrapping."""
    lines = [f"  {int(c):<4} {c.meaning}" for c in ExitCode]
    return "\b\nExit codes:\n" + "\n".join(lines)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings=CONTEXT, epilog=exit_codes_epilog())
@click.version_option(__version__, "-V", "--version", prog_name="goship",
                      message="%(prog)s %(version)s")
@click.option("-v", "--verbose", count=True, help="Show more: commands run, timings.")
@click.option("-q", "--quiet", is_flag=True, help="Only results and errors.")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Path to goship.toml (default: nearest one from the current directory up).")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, config_path: Path | None) -> None:
    """goship: ship a Go web service from source to production with zero lost requests.

    \b
    Example:
      goship init                 # read the Go project, write goship.toml
      goship doctor local         # check this machine and the environment's hosts
      goship config show lab      # the merged config of [env.lab], secrets masked
    """
    ui.verbosity = -1 if quiet else verbose
    ctx.obj = config_path


def debug_log_path() -> Path:
    explicit = os.environ.get("GOSHIP_DEBUG_LOG")
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "goship" / "debug.log"


def write_debug_log(exc: BaseException) -> Path:
    path = debug_log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # 0600: a traceback can hold values from the config.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(f"--- {datetime.now(UTC).isoformat()} goship {__version__} argv={sys.argv!r}\n")
        import traceback  # only here: a failure's start-up cost, not every command's

        f.write("".join(traceback.format_exception(exc)))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    try:
        rv = cli.main(args=list(argv) if argv is not None else None, prog_name="goship",
                      standalone_mode=False)
        # Without standalone mode, click returns ctx.exit(N)'s code instead of raising.
        return rv if isinstance(rv, int) else 0
    except GoshipError as e:
        print(f"goship: {e.line()}", file=sys.stderr)
        return int(e.exit_code)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.exceptions.Abort:
        print("goship: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except click.ClickException as e:
        e.show()
        return EXIT_USAGE if e.exit_code == 2 else e.exit_code
    except KeyboardInterrupt:
        print("goship: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as e:
        path = write_debug_log(e)
        print(f"goship: internal error: {type(e).__name__}: {e} (traceback in {path}; "
              "please report it)", file=sys.stderr)
        return EXIT_INTERNAL


def run() -> None:
    code = main()
    # Everything the command does is done: skip the interpreter's teardown (tens of ms of
    # freeing objects and joining idle pool threads on every command).
    for stream in (sys.stdout, sys.stderr):
        # a reader that went away (`goship status | head`) is not an error
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
