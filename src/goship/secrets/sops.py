"""A sops-encrypted run.env_file, decrypted by the real `sops` binary to its stdout, into
memory: never a clear file on the local disk. sops finds the user's key as it always does
(SOPS_AGE_KEY_FILE, ~/.config/sops/age/keys.txt, a PGP agent...)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Literal

from goship.config.validators import ENV_VAR
from goship.errors import ConfigError, PrerequisiteError

# The version scripts/secrets-tools.sh builds into the cache; a sops on PATH wins.
SOPS_VERSION = "v3.13.3"
TIMEOUT = 60.0

Kind = Literal["dotenv", "yaml", "json"]

# sops writes its metadata as `sops_*` keys in a dotenv file and a top-level `sops` map in
# YAML and JSON; `mac` (and `version`) are in every file it encrypts.
_DOTENV_META = re.compile(r"^sops_(mac|version)=", re.M)
_YAML_META = re.compile(r"^sops:[ \t]*$", re.M)
_YAML_MAC = re.compile(r"^[ \t]+mac:[ \t]", re.M)
_YAML_KEY = re.compile(r"""^["']?([A-Za-z_][A-Za-z0-9_]*)["']?:""", re.M)


def detect(text: str) -> Kind | None:
    """The sops store a file's text was written by, or None for a plain file. By the
    metadata sops adds, never by the file's name."""
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        meta = data.get("sops") if isinstance(data, dict) else None
        return "json" if isinstance(meta, dict) and "mac" in meta else None
    if _YAML_META.search(text) and _YAML_MAC.search(text):
        return "yaml"
    if _DOTENV_META.search(text):
        return "dotenv"
    return None


def detect_file(path: Path) -> Kind | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None  # parse_env_file says what is wrong with it
    return detect(text)


def names(path: Path, kind: Kind) -> list[str]:
    """The variable names of a sops file: sops encrypts values, not keys."""
    text = path.read_text(encoding="utf-8")
    if kind == "json":
        return sorted(k for k in json.loads(text) if k != "sops")
    if kind == "yaml":
        return sorted(k for k in _YAML_KEY.findall(text) if k != "sops")
    keys = (line.partition("=")[0].strip() for line in text.splitlines()
            if "=" in line and not line.lstrip().startswith("#"))
    return sorted(k for k in keys if not k.startswith("sops_"))


def binary() -> str:
    found = shutil.which("sops")
    if found:
        return found
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    cached = cache / "goship" / "sops" / SOPS_VERSION / "bin" / "sops"
    if cached.is_file() and os.access(cached, os.X_OK):
        return str(cached)
    raise PrerequisiteError("run.env_file is sops-encrypted and sops is not installed",
                            hint="install sops (https://getsops.io) or run "
                                 "scripts/secrets-tools.sh")


def decrypt(path: Path, kind: Kind, shown: str) -> dict[str, str]:
    """The file's values, decrypted to sops' stdout as JSON (one shape for every store)."""
    argv = [binary(), "--decrypt", "--input-type", kind, "--output-type", "json", str(path)]
    try:
        res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                             timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise ConfigError(shown, "", f"sops did not decrypt it within {TIMEOUT:g}s",
                          hint="check the key sops asks for (a PGP agent waiting for a "
                               "passphrase?)") from None
    if res.returncode != 0:
        raise ConfigError(shown, "", f"sops could not decrypt it (exit {res.returncode}: "
                                     f"{reason(res.stderr)})",
                          hint="the key it is encrypted to must be in SOPS_AGE_KEY_FILE, "
                               "~/.config/sops/age/keys.txt or your PGP keyring")
    values = flat(res.stdout, shown)
    if kind == "dotenv":  # sops keeps a dotenv file's quotes; a plain env file's are removed
        values = {k: unquote(v) for k, v in values.items()}
    return values


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def flat(out: bytes, shown: str) -> dict[str, str]:
    """sops' JSON output as KEY=VALUE pairs: scalars only, never a value in an error."""
    try:
        data = json.loads(out)
    except ValueError:
        raise ConfigError(shown, "", "sops printed something that is not JSON",
                          hint="decrypt it by hand with `sops -d` to check it") from None
    if not isinstance(data, dict):
        raise ConfigError(shown, "", "a sops env file must hold KEY: value pairs",
                          hint="one top-level key per variable")
    values: dict[str, str] = {}
    for key, value in data.items():
        if not ENV_VAR.match(key):
            raise ConfigError(shown, key, "not an environment variable name",
                              hint="use letters, digits and _ (not starting with a digit)")
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        elif not isinstance(value, str):
            raise ConfigError(shown, key, "a nested value cannot be an environment variable",
                              hint="keep one scalar value per key")
        if "\0" in value:
            raise ConfigError(shown, key, "a NUL byte in the value", hint="remove it")
        values[key] = value
    return values


def reason(stderr: bytes) -> str:
    """Why sops failed, on one line: its first message line, then the first sentence of
    each key's error (`- | ...` blocks). It holds no clear value: nothing was decrypted."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines:
        return "no message"
    why = " ".join(ln.lstrip("-").strip().removeprefix("|").strip() for ln in lines
                   if ln.startswith(("- |", "|")))
    text = lines[0] + (f" {why.split('. ')[0].rstrip('.')}." if why else "")
    return text if len(text) <= 240 else text[:237] + "..."
