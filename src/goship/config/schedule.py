"""`[processes.NAME] schedule`: a systemd OnCalendar expression, checked by the machine's
`systemd-analyze calendar` when it has one, and always by a character whitelist first (the
value lands in a unit file; no newline, quote or shell character gets that far)."""

from __future__ import annotations

import re
import shutil
import subprocess

PROCESS_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$")
# Weekdays, dates, times, ranges, lists, repetitions, time zones (Europe/Paris, UTC) and
# the shorthands (daily, hourly, ...): nothing else is ever part of a calendar event.
CALENDAR = re.compile(r"^[A-Za-z0-9*:,./~+_ -]{1,128}$")


def process_name(value: str) -> str:
    if not PROCESS_NAME.match(value):
        raise ValueError(f"expected a process name of lowercase letters, digits and '-' "
                         f"(starting with a letter, at most 32), like worker, found "
                         f"{value!r}")
    return value


def calendar(value: str) -> str:
    if not CALENDAR.match(value) or value.strip() != value or "  " in value:
        raise ValueError(f'expected a systemd calendar event like "*-*-* 03:00:00" or '
                         f'"Mon..Fri 02:30" (letters, digits, * : , . / ~ + - and single '
                         f"spaces), found {value!r}")
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return value  # the hosts' systemd refuses it at the timer's start, with its reason
    try:
        res = subprocess.run([tool, "calendar", "--", value], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return value
    if res.returncode != 0:
        said = (res.stderr or res.stdout).strip().splitlines()[:1]
        raise ValueError(f"systemd-analyze calendar refuses {value!r}"
                         f"{': ' + said[0] if said else ''} (see man systemd.time)")
    return value
