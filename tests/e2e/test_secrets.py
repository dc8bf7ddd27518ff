"""Secrets from a manager on real parts: sops and age built from their Go modules
(scripts/secrets-tools.sh), a sops-encrypted run.env_file decrypted with the user's age key,
and a [secrets] command, deployed to a lab host (real systemd, sshd, nginx). The values
reach the running service through the host's 0600 env file; no clear value is in goship's
output, its debug log, the host's journal, or any file written under /tmp or ~ on this
machine during the run. A failing secret command stops before any host changes."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from goship.errors import ConfigError
from goship.secrets import env_file_values, sops
from tests.conftest import CliResult, skip
from tests.e2e.conftest import Lab
from tests.e2e.helpers import Project
from tests.e2e.load import Load

pytestmark = [pytest.mark.slow, pytest.mark.components("secrets")]
Run = Callable[..., CliResult]
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "goship"
AGE = CACHE / "age" / "v1.3.2" / "bin"
H1, APP, LISTEN = "10.78.0.11", "secretapp", 8137


def tool(path: Path) -> str:
    if not path.is_file():
        skip(f"{path.name} is not built: run scripts/secrets-tools.sh")
    return str(path)


@pytest.fixture(scope="module")
def age_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A fresh age identity (the user's key) and its recipient."""
    key = tmp_path_factory.mktemp("age") / "keys.txt"
    subprocess.run([tool(AGE / "age-keygen"), "-o", str(key)], check=True,
                   capture_output=True)
    recipient = subprocess.run([tool(AGE / "age-keygen"), "-y", str(key)], check=True,
                               capture_output=True, text=True).stdout.strip()
    return key, recipient


def encrypt(clear: str, kind: str, recipient: str, out: Path) -> None:
    """sops-encrypt `clear`, given on stdin: the clear text is never a file."""
    sops_bin = tool(CACHE / "sops" / sops.SOPS_VERSION / "bin" / "sops")
    res = subprocess.run([sops_bin, "encrypt", "--age", recipient, "--input-type", kind,
                          "--output-type", kind, "/dev/stdin"], input=clear.encode(),
                         capture_output=True, check=True)
    out.write_bytes(res.stdout)


@pytest.mark.parametrize(("kind", "clear"), [
    ("dotenv", 'DB_PASS=pw-{v}\nQUOTED="a b {v}"\n'),
    ("yaml", "DB_PASS: pw-{v}\nPORTS: 3\n"),
    ("json", '{{"DB_PASS": "pw-{v}", "ON": true}}'),
])
def test_real_sops_files_decrypt_in_memory(tmp_path: Path, age_key: tuple[Path, str],
                                           monkeypatch: pytest.MonkeyPatch, kind: str,
                                           clear: str) -> None:
    key, recipient = age_key
    v = secrets.token_hex(6)
    path = tmp_path / ".env.prod"
    encrypt(clear.format(v=v), kind, recipient, path)
    assert sops.detect_file(path) == kind
    assert v not in path.read_text()
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key))
    from goship.config import parse

    config = parse({"app": {"name": "shop"}, "run": {"env_file": ".env.prod"}}).base
    got = env_file_values(tmp_path, config)
    want = {"dotenv": {"DB_PASS": f"pw-{v}", "QUOTED": f"a b {v}"},
            "yaml": {"DB_PASS": f"pw-{v}", "PORTS": "3"},
            "json": {"DB_PASS": f"pw-{v}", "ON": "true"}}[kind]
    assert got == want
    assert sorted(sops.names(path, sops.detect_file(path) or "dotenv")) == sorted(want)
    assert sorted(os.listdir(tmp_path)) == [".env.prod"]  # no clear copy beside it


def test_a_key_that_cannot_decrypt_is_one_line(tmp_path: Path, age_key: tuple[Path, str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _, recipient = age_key
    path = tmp_path / ".env.prod"
    encrypt("DB_PASS=never-shown\n", "dotenv", recipient, path)
    other = tmp_path / "other.txt"
    subprocess.run([tool(AGE / "age-keygen"), "-o", str(other)], check=True,
                   capture_output=True)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(other))
    monkeypatch.setenv("XDG_CACHE_HOME", str(CACHE.parent))  # where sops was built
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/sops/age/keys.txt either
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    with pytest.raises(ConfigError) as info:
        sops.decrypt(path, "dotenv", ".env.prod")
    line = info.value.line()
    assert line.startswith(".env.prod: sops could not decrypt it (exit 128: Failed to get "
                           "the data key required to decrypt the SOPS file.")
    assert "\n" not in line
    assert "SOPS_AGE_KEY_FILE" in line
    assert info.value.exit_code == 2


def test_a_failed_decryption_stops_deploy_before_any_host(
        tmp_path: Path, age_key: tuple[Path, str], monkeypatch: pytest.MonkeyPatch,
        run_cli: Run) -> None:
    _, recipient = age_key
    encrypt("DB_PASS=never-shown\n", "dotenv", recipient, tmp_path / ".env.prod")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(tmp_path / "no-such-keys.txt"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(CACHE.parent))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    # 10.255.255.1 never answers: reaching for it would time out, not exit 2.
    (tmp_path / "goship.toml").write_text('[app]\nname = "shop"\n[run]\nenv_file = '
                                          '".env.prod"\n[env.prod]\nhosts = ["10.255.255.1"]\n')
    r = run_cli("deploy", "prod", cwd=tmp_path)
    assert r.code == 2, r.out + r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("goship: .env.prod: sops could not decrypt it (exit 128: ")
    assert "never-shown" not in r.out + r.err


# ---- on a lab host -----------------------------------------------------------------------

TOML = f"""
[app]
name = "{APP}"

[app.stamp]
"main.version" = "{{version}}"

[build]
assets = ["templates", "static"]

[run]
env_file = ".env.lab.sops"
base_port = 9370

[run.health]
interval = 0.2
deadline = 15.0

[proxy]
listen = {LISTEN}

[secrets]
CMD_SECRET = {{ command = "{{command}}" }}

[env.lab]
lab = 1
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, lab: Lab, age_key: tuple[Path, str]
            ) -> Iterator[tuple[Project, dict[str, str]]]:
    _, recipient = age_key
    values = {"SOPS_SECRET": f"sopsval-{secrets.token_hex(8)}",
              "part": secrets.token_hex(8)}
    # goship.toml holds the command, not its output: printf joins the two halves.
    # Shell metacharacters: quoted on their way to the host's env file, never run.
    values["CMD_SECRET"] = f"cmdval;$(id)`&|<>-{values['part']}"
    p = Project(tmp_path_factory.mktemp("secrets") / APP,
                TOML.replace("{command}", f"printf %s-%s 'cmdval;$(id)`&|<>' {values['part']}"))
    encrypt(f"SOPS_SECRET={values['SOPS_SECRET']}\n", "dotenv", recipient,
            p.root / ".env.lab.sops")
    (p.root / ".gitignore").write_text("dist/\n")
    p.release("v1.0.0")
    yield p, values
    lab.remove_app(APP, ["h1"])


def environ(lab: Lab) -> dict[str, str]:
    st = json.loads(lab.ssh("h1", f"cat /srv/{APP}/state.json").stdout)
    color = st["live"]["color"]
    pid = lab.ssh("h1", f"systemctl show -p MainPID --value {APP}-{color}@"
                        f"{st['ports'][color][0]}").stdout.strip()
    raw = lab.ssh("h1", f"tr '\\0' '\\n' < /proc/{pid}/environ").stdout
    return dict(line.split("=", 1) for line in raw.splitlines() if "=" in line)


def written_since(marker: Path, needles: list[str]) -> list[str]:
    """Files under /tmp and ~ written since `marker` that hold any needle (grep -F)."""
    found = subprocess.run(
        ["sh", "-c", 'find /tmp "$HOME" -xdev -type f -newer "$0" -print0 2>/dev/null | '
                     'xargs -0 -r grep -lsF -e "$1" -e "$2" -e "$3" -- || true',
         str(marker), *needles], capture_output=True, text=True, check=True)
    return found.stdout.splitlines()


def host_tree(lab: Lab) -> str:
    return lab.ssh("h1", f"find /srv/{APP} /etc/nginx /etc/systemd/system -newer /etc/hostname "
                         f"-printf '%p %s %T@ %m\\n' 2>/dev/null | sort; "
                         f"systemctl list-units --all --no-legend '{APP}*'").stdout


@pytest.mark.lab
def test_sops_file_and_command_secret_reach_the_app_and_nowhere_else(
        run_cli: Run, project: tuple[Project, dict[str, str]], lab: Lab,
        age_key: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p, values = project
    key, _ = age_key
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key))
    debug_log = tmp_path / "debug.log"
    monkeypatch.setenv("GOSHIP_DEBUG_LOG", str(debug_log))
    needles = [values["SOPS_SECRET"], values["CMD_SECRET"], "sopsval-"]
    marker = tmp_path / "marker"
    marker.write_text("")

    outputs = []
    for argv in (["config", "show", "lab"], ["deploy", "lab", "--dry-run", "--skip-checks"],
                 ["-v", "deploy", "lab", "--skip-checks"], ["status", "lab"]):
        r = run_cli(*argv, cwd=p.root)
        assert r.code == 0, (argv, r.out + r.err)
        outputs.append(r.out + r.err)
    for needle in needles:
        assert not any(needle in out for out in outputs), needle

    # The service runs with both values, read from the 0600 env file of its color.
    env = environ(lab)
    assert env["SOPS_SECRET"] == values["SOPS_SECRET"]
    assert env["CMD_SECRET"] == values["CMD_SECRET"]
    modes = lab.ssh("h1", f"stat -c '%a %U %n' /srv/{APP}/shared/env.* "
                          f"/srv/{APP}/shared/envs/*").stdout.split("\n")
    files = [m for m in modes if m]
    assert files, modes
    assert all(m.startswith(f"600 {APP} ") for m in files), files
    # On the host, the values are in those files only: not in the journal.jsonl, the
    # release, nginx, the unit files or the system journal.
    holders = lab.ssh("h1", f"grep -rlF -e {values['SOPS_SECRET']} -e {values['part']} "
                            f"/srv/{APP} /etc/nginx /etc/systemd /etc/supervisor 2>/dev/null; "
                            f"journalctl --no-pager -q | grep -cF sopsval- || true",
                      check=False).stdout.split()
    assert holders[-1] == "0"
    assert sorted(h.rsplit("/", 2)[-2] for h in holders[:-1]) == ["envs", "shared"], holders

    # This machine: nothing written under /tmp or ~ during the run holds a value.
    assert not debug_log.exists() or not any(n in debug_log.read_text() for n in needles)
    assert written_since(marker, needles) == []


@pytest.mark.lab
def test_a_failing_secret_command_stops_before_the_host_changes(
        run_cli: Run, project: tuple[Project, dict[str, str]], lab: Lab,
        age_key: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    p, values = project
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(age_key[0]))
    before = host_tree(lab)
    assert f"/srv/{APP}/state.json" in before
    p.toml = TOML.replace("{command}", f"sh -c 'printf %s-%s leak {values['part']}; exit 7'")
    p.release("v2.0.0")
    with Load(f"http://{H1}:{LISTEN}/api/items") as load:
        r = run_cli("deploy", "lab", "--skip-checks", cwd=p.root)
    assert r.code == 2, r.out + r.err
    assert r.err.strip().splitlines()[-1] == (
        "goship: goship.toml: secrets.CMD_SECRET: sh exited 7 (its output is not shown); "
        "run the command yourself to see why")
    assert values["part"] not in r.out + r.err
    assert load.result.failed == 0, load.result.text
    assert host_tree(lab) == before
    st = json.loads(lab.ssh("h1", f"cat /srv/{APP}/state.json").stdout)
    assert st["live"]["release"].startswith("v1.0.0-")
