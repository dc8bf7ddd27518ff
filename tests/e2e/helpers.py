"""What the end-to-end tests share: git, free ports, a copy of the example as a project."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from pathlib import Path

from tests.conftest import EXAMPLE


def git(repo: Path, *args: str, date: str | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def free_port(low: int = 10000, high: int = 30000) -> int:
    """A free port below the kernel's ephemeral range, so no outgoing connection takes it
    between this check and the server's bind."""
    for _ in range(200):
        port = random.randrange(low, high)  # noqa: S311
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))  # noqa: S104
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def example_repo(dest: Path, *, toml: str | None = None, tag: str | None = "v1.0.0",
                 date: str | None = None) -> Path:
    """examples/hello-gin as a project of its own: a git repository, committed and tagged,
    with its own goship.toml when given."""
    ignore = ["dist", ".goship"] + (["goship.toml"] if toml is not None else [])
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(*ignore))
    if toml is not None:
        (dest / "goship.toml").write_text(toml)
    git(dest, "init", "-q")
    git(dest, "add", ".")
    git(dest, "commit", "-qm", tag or "initial", date=date)
    if tag:
        git(dest, "tag", tag)
    return dest


class Project:
    """A copy of the example whose versions a test commits and tags one by one."""

    def __init__(self, root: Path, toml: str) -> None:
        self.root = root
        self.toml = toml
        ignore = shutil.ignore_patterns("dist", ".goship", "goship.toml")
        shutil.copytree(EXAMPLE, root, ignore=ignore)
        git(root, "init", "-q")

    def release(self, tag: str, **env: str) -> None:
        """Commit and tag a version; `env` adds run.env knobs for this version only. The
        page template names the version, so a test sees which release rendered it."""
        text = self.toml
        if env:
            text += "\n[run.env]\n" + "".join(f'{k} = "{v}"\n' for k, v in env.items())
        (self.root / "goship.toml").write_text(text)
        (self.root / "templates" / "index.tmpl").write_text(
            (EXAMPLE / "templates" / "index.tmpl").read_text() + f"<footer>{tag}</footer>\n")
        git(self.root, "add", "-A")
        git(self.root, "commit", "-qm", tag, "--allow-empty")
        git(self.root, "tag", tag)
