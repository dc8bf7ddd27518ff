"""docs/config.md documents every key goship.toml accepts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from goship.config.model import Config, Target_
from tests.conftest import REPO


def keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        ann: Any = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.extend(keys(ann, f"{prefix}{name}."))
        else:
            out.append(f"{prefix}{name}")
    return out


def test_every_key_is_documented() -> None:
    doc = (REPO / "docs" / "config.md").read_text()
    missing = []
    for key in keys(Config) + [f"env.{k}" for k in keys(Target_)]:
        section, _, name = key.rpartition(".")
        heading = f"## {section}" if section.count(".") == 0 else f"### {section}"
        if heading not in doc or f"| `{name}` |" not in doc.split(heading, 1)[1]:
            missing.append(key)
    assert not missing, f"undocumented keys: {missing}"
