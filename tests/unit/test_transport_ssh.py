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
from goship.transport.ssh import connection_key, control_dir
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


def test_a_master_is_shared_only_with_the_same_trust(tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text("10.0.0.1 ssh-ed25519 AAAAold\n")
    a = SshOptions(identity_file="/k", known_hosts=str(kh))
    assert connection_key(a) == connection_key(SshOptions(identity_file="/k",
                                                          known_hosts=str(kh)))
    assert connection_key(a) != connection_key(SshOptions(identity_file="/other",
                                                          known_hosts=str(kh)))
    before = connection_key(a)
    kh.write_text("10.0.0.1 ssh-ed25519 AAAAnew\n")  # a rotated host key
    assert connection_key(a) != before


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
