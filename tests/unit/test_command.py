from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

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


def test_own_scripts_run_in_the_sessions_subshell_other_text_in_its_own_sh() -> None:
    from goship.command import output_direct, subshell_text

    own = ("sh", "-c", 'echo "$1|$2"; exit 3', "goship-x", "a b", "c'd")
    assert subshell_text(own) == "set -- 'a b' 'c'\"'\"'d'\necho \"$1|$2\"; exit 3"
    hook = ("sh", "-c", "echo done )")  # a user's text: never spliced into the frame
    assert subshell_text(hook) == "sh -c 'echo done )'"
    assert output_direct(own)
    assert output_direct(("systemctl", "show", "x"))
    assert output_direct(("sudo", "-n", "--", "cat", "/etc/x"))
    assert not output_direct(hook)  # it may leave a daemon writing to its stdout
    assert not output_direct(("sh", "-c", "x", "goship-release-command", "/srv"))
    assert not output_direct(("nohup", "x"))


def test_inlined_scripts_keep_their_arguments_exit_codes_and_the_shell_alive() -> None:
    """Through a real session: an inlined script sees its arguments and its exit ends only
    its subshell; a user's text with a stray parenthesis fails alone."""
    from goship.command import subshell_text
    from goship.transport.session import Session

    s = Session(["sh"], "here")
    try:
        s.wait_ready(10)
        res = s.run(subshell_text(("sh", "-c", 'echo "$#:$1|$2"; exit 3', "goship-x", "a b",
                                   "$(id)")), None, 10, direct=True)
        assert (res.code, res.stdout) == (3, "2:a b|$(id)\n")
        res = s.run(subshell_text(("sh", "-c", "echo done )")), None, 10)
        assert res.code != 0
        assert "done" not in res.stdout
        assert s.run("echo alive", None, 10).stdout == "alive\n"
    finally:
        s.close()


def test_a_file_write_never_follows_a_planted_temp_name(tmp_path: Path) -> None:
    """The temp file beside the target has a predictable name (the shell's pid): one left
    there (a killed run, or a symlink someone planted) is replaced, never written through."""
    from goship.command import subshell_text
    from goship.deploy.scripts import INSTALL_FILE
    from goship.transport.session import Session

    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    s = Session(["sh"], "here")
    try:
        s.wait_ready(10)
        target = tmp_path / "conf" / "site.conf"
        target.parent.mkdir()
        (target.parent / f".site.conf.goship.{s.proc.pid}").symlink_to(victim)
        argv = ("sh", "-c", INSTALL_FILE, "goship-install", str(target), "640",
                hashlib.sha256(b"server {}\n").hexdigest())
        res = s.run(subshell_text(argv), b"server {}\n", 10, direct=True)
        assert (res.code, res.stdout) == (0, "changed\n"), res.stderr
        assert target.read_text() == "server {}\n"
        assert oct(target.stat().st_mode & 0o777) == "0o640"
        assert victim.read_text() == "untouched\n"
        assert sorted(p.name for p in target.parent.iterdir()) == ["site.conf"]
        res = s.run(subshell_text(argv), b"server {}\n", 10, direct=True)
        assert res.stdout == "same\n"
        # other content (its digest differs from the file's): written
        other = b"server { listen 81; }\n"
        argv = (*argv[:-1], hashlib.sha256(other).hexdigest())
        res = s.run(subshell_text(argv), other, 10, direct=True)
        assert (res.code, res.stdout) == (0, "changed\n"), res.stderr
        assert target.read_bytes() == other
        assert sorted(p.name for p in target.parent.iterdir()) == ["site.conf"]
    finally:
        s.close()


def test_a_file_named_for_its_content_is_written_once(tmp_path: Path) -> None:
    """ENSURE_FILE (the drain script): written with its mode when missing; one already
    there is left as it is (the same name is the same content)."""
    import subprocess

    from goship.deploy.scripts import ENSURE_FILE

    target = tmp_path / "run" / "drain-abc.sh"
    argv = ["sh", "-c", ENSURE_FILE, "goship-ensure", str(target), "644"]
    first = subprocess.run(argv, input=b"wait\n", capture_output=True, check=False)
    assert first.returncode == 0, first.stderr
    assert target.read_text() == "wait\n"
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    again = subprocess.run(argv, input=b"other\n", capture_output=True, check=False)
    assert again.returncode == 0, again.stderr
    assert target.read_text() == "wait\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["drain-abc.sh"]
