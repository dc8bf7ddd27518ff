"""What `go mod tidy -diff` means: a missing requirement or checksum breaks the build (an
error); a stale go.sum line or an unused requirement does not change what is built (a
warning). Pure: the diff text in, a summary out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

REQ = re.compile(r"^(?:require\s+)?\(?\s*([^\s()]+)\s+(v\S+)")
SHOWN = 5  # diff lines shown per kind


@dataclass
class TidyReport:
    missing: list[str] = field(default_factory=list)  # requirements go.mod lacks
    changed: list[str] = field(default_factory=list)  # requirements tidy would re-version
    unused: list[str] = field(default_factory=list)  # requirements nothing imports
    cosmetic: list[str] = field(default_factory=list)  # `// indirect` marks, go directive
    sum_missing: list[str] = field(default_factory=list)  # checksums go.sum lacks
    sum_stale: list[str] = field(default_factory=list)  # checksums nothing needs

    @property
    def errors(self) -> bool:
        return bool(self.missing or self.changed or self.sum_missing)

    @property
    def clean(self) -> bool:
        return not (self.errors or self.unused or self.cosmetic or self.sum_stale)

    def summary(self) -> str:
        parts = []
        for items, what in ((self.missing, "missing requirement"),
                            (self.changed, "requirement tidy would change"),
                            (self.sum_missing, "missing go.sum line"),
                            (self.unused, "unused requirement"),
                            (self.sum_stale, "stale go.sum line"),
                            (self.cosmetic, "cosmetic go.mod change")):
            if items:
                parts.append(f"{len(items)} {what}{'' if len(items) == 1 else 's'}")
        return ", ".join(parts)

    def details(self) -> list[str]:
        """The first few lines of each kind, errors first."""
        out = []
        for items, sign in ((self.missing, "+"), (self.changed, "~"), (self.sum_missing, "+"),
                            (self.unused, "-"), (self.sum_stale, "-"),
                            (self.cosmetic, "~")):
            out += [f"  {sign} {line}" for line in items[:SHOWN]]
            if len(items) > SHOWN:
                out.append(f"    ... and {len(items) - SHOWN} more")
        return out


def _module(line: str) -> tuple[str, str] | None:
    text = line.split("//")[0].strip()
    m = REQ.match(text)
    return (m.group(1), m.group(2)) if m else None


def classify(diff: str) -> TidyReport:
    """Sort the +/- lines of go.mod and go.sum by what they mean."""
    report = TidyReport()
    current = ""
    mod_added: dict[str, tuple[str, str]] = {}
    mod_removed: dict[str, tuple[str, str]] = {}
    other: list[str] = []
    for raw in diff.splitlines():
        if raw.startswith("diff "):
            current = raw.split()[-1].rsplit("/", 1)[-1]
            continue
        if raw.startswith(("---", "+++", "@@")) or raw[:1] not in ("+", "-"):
            continue
        sign, line = raw[0], raw[1:].strip()
        if not line:
            continue
        if current == "go.sum":
            (report.sum_missing if sign == "+" else report.sum_stale).append(line)
            continue
        mod = _module(line)
        if mod is None or line.startswith(("module", "go ", "toolchain")):
            other.append(line)
            continue
        (mod_added if sign == "+" else mod_removed)[mod[0]] = (mod[1], line)
    for path, (version, line) in mod_added.items():
        before = mod_removed.pop(path, None)
        if before is None:
            report.missing.append(line)
        elif before[0] != version:
            report.changed.append(f"{path} {before[0]} -> {version}")
        else:
            report.cosmetic.append(line)
    report.unused += [line for _, line in mod_removed.values()]
    report.cosmetic += other
    return report
