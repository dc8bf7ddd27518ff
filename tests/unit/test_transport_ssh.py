"""The SSH transport's rules that need no SSH server: its private control directory, which
connections may share a master, and a host that refuses the connection (real ssh client)."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest

from goship.command import Cmd
from goship.errors import PrerequisiteError, Unreachable
from goship.transport import SshOptions, SshTransport
from goship.transport.ssh import control_dir, key_blobs
from tests.conftest import need


@pytest.fixture
def tmpdir_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_control_dir_is_private(tmpdir_root: Path) -> None:
    d = control_dir()
    assert d == tmpdir_root / f"goship-{os.getuid()}"
    assert d.stat().st_mode & 0o777 == 0o700


def test_control_dir_someone_could_reach_is_refused(tmpdir_root: Path) -> None:
    d = tmpdir_root / f"goship-{os.getuid()}"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    with pytest.raises(PrerequisiteError) as info:
        control_dir()
    assert str(d) in info.value.line()
    assert "mode 0700" in info.value.line()
    assert info.value.exit_code == 2


def test_control_dir_that_is_a_symlink_is_refused(tmpdir_root: Path) -> None:
    real = tmpdir_root / "elsewhere"
    real.mkdir(mode=0o700)
    (tmpdir_root / f"goship-{os.getuid()}").symlink_to(real)
    with pytest.raises(PrerequisiteError):
        control_dir()


def test_a_master_is_shared_only_with_the_same_trust(tmp_path: Path, tmpdir_root: Path) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text("10.0.0.1 ssh-ed25519 AAAAold\n")
    a = SshTransport("root@10.0.0.1", SshOptions(identity_file="/k", known_hosts=str(kh)))
    b = SshTransport("root@10.0.0.1", SshOptions(identity_file="/k", known_hosts=str(kh)))
    other = SshTransport("root@10.0.0.1", SshOptions(identity_file="/o", known_hosts=str(kh)))
    assert str(kh) in a.known_hosts_files()
    assert a.control_path() == b.control_path() != other.control_path()
    assert a.trusted_keys() == {"AAAAold"}
    kh.write_text("10.0.0.1 ssh-ed25519 AAAAnew\n")  # a rotated host key
    later = SshTransport("root@10.0.0.1", SshOptions(identity_file="/k", known_hosts=str(kh)))
    assert later.control_path() != a.control_path()
    assert later.trusted_keys() == {"AAAAnew"}


def test_key_blobs_reads_known_hosts_and_pub_lines() -> None:
    text = ("# Host 10.0.0.1 found: line 1\n|1|salt=|hash= ssh-ed25519 AAAA1\n"
            "@revoked 10.0.0.1 ssh-rsa AAAA2\n")
    assert key_blobs(text) == {"AAAA1"}
    assert key_blobs("ssh-gw ssh-ed25519 AAAA5\n") == {"AAAA5"}
    assert key_blobs("ecdsa-sha2-nistp256 AAAA3 root@h1\nssh-ed25519 AAAA4\n",
                     pub=True) == {"AAAA3", "AAAA4"}


def test_refused_connection_is_unreachable() -> None:
    need("ssh")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = SshTransport(f"nobody@127.0.0.1:{port}", SshOptions(connect_timeout=5))
    with pytest.raises(Unreachable) as info:
        t.run(Cmd.of("true"))
    assert "cannot connect over ssh" in info.value.line()
    assert "Connection refused" in info.value.line()
    # the host is then known to be down: the next command fails at once, same error
    with pytest.raises(Unreachable):
        t.put("/tmp/x", b"x")
