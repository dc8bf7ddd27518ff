from __future__ import annotations

import shlex

from goship.command import MASK, Cmd, mask


def test_every_argument_is_quoted_for_the_remote_shell() -> None:
    hostile = "x; rm -rf / #"
    cmd = Cmd.of("mkdir", "-p", f"/srv/{hostile}")
    assert shlex.split(cmd.shell()) == ["mkdir", "-p", f"/srv/{hostile}"]


def test_sudo_never_prompts() -> None:
    assert Cmd.of("id", sudo=True).shell() == "sudo -n -- id"


def test_secrets_are_masked_when_shown_but_not_when_run() -> None:
    cmd = Cmd.of("env", "DB_PASSWORD=s3cr3t pass", secrets=["s3cr3t pass"])
    assert "s3cr3t" not in cmd.display()
    assert "s3cr3t" not in str(cmd)
    assert f"{cmd}".count(MASK) == 1
    assert "s3cr3t pass" in cmd.shell()


def test_mask_handles_overlapping_secrets() -> None:
    assert mask("token=abcdef", ["abc", "abcdef"]) == f"token={MASK}"
