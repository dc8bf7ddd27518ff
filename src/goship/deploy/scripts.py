"""POSIX sh scripts run on hosts. Values always arrive as positional arguments ("$1"),
never spliced into the script text."""

from goship.transport.base import PUT_SCRIPT, WRITE_TEMP

HEALTH_GATE = r"""
# $1 deadline (s)  $2 consecutive successes  $3 interval (s)  $4 timeout (s)  $5 PORT:PID
# pairs ("" none): each PID must still run once every URL answered ("gone PORT PID" and
# exit 1 if not: the instance stopped or restarted during the gate)  $6.. URLs
deadline=${1%.*}; need=$2; interval=$3; tmo=$4; pids=$5; shift 5
end=  # the clock is read once a first try failed: a warm standby answers at once
for url in "$@"; do
  ok=0; last="no answer yet"
  while :; do
    if command -v curl >/dev/null 2>&1; then
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time "$tmo" "$url" 2>/dev/null)
    else
      code=$(wget -q -S -O /dev/null -T "$tmo" "$url" 2>&1 | awk '/HTTP\//{c=$2} END{print c}')
    fi
    case "$code" in
      2??) ok=$((ok + 1)); last="HTTP $code" ;;
      ""|000) ok=0; last="connection refused or timed out" ;;
      *) ok=0; last="HTTP $code" ;;
    esac
    if [ "$ok" -ge "$need" ]; then echo "ok $url $last"; break; fi
    [ -n "$end" ] || end=$(( $(date +%s) + deadline ))
    if [ "$(date +%s)" -ge "$end" ]; then echo "fail $url $last"; exit 1; fi
    sleep "$interval"
  done
done
for pp in $pids; do
  st=; { read -r st < "/proc/${pp#*:}/stat"; } 2>/dev/null
  st=${st##*) }; st=${st%% *}  # the state after "pid (comm) "; a zombie has ended too
  case $st in ""|Z|X) echo "gone ${pp%:*} ${pp#*:}"; exit 1 ;; esac
done
"""

LOCK = r"""
# $1 app root  $2 owner JSON  $3 ttl (s)  $4 force (1|0)  $5 token of a holder known to be
# dead ("" if none)  $6 the app's state file. Judging the lock and breaking it happen under
# one flock, so of two deployers that both find it expired exactly one takes it. Exit 3:
# held by someone else. Taken, it also says when the state was last written ("state" and
# the file's "updated" line): the plan was made from what was read before the lock.
root=$1; owner=$2; ttl=${3%.*}; force=$4; dead=$5; state=$6
[ -d "$root" ] || mkdir -p "$root" || exit 5
command -v flock >/dev/null 2>&1 || { echo "flock (util-linux) is not installed" >&2; exit 5; }
exec 9>>"$root/.lock.guard" || exit 5
flock -w 30 9 || { echo "$root/.lock.guard: still busy after 30s" >&2; exit 5; }
take() { mkdir "$root/.lock" 2>/dev/null && printf '%s\n' "$owner" > "$root/.lock/owner"; }
stamp() {
  [ -n "$state" ] && [ -f "$state" ] || return 0
  while IFS= read -r l || [ -n "$l" ]; do
    case $l in *'"updated":'*) printf 'state %s\n' "$l"; return 0 ;; esac
  done < "$state"
}
if take; then echo acquired; stamp; exit 0; fi
now=$(date +%s)
beat=$(stat -c %Y "$root/.lock/owner" 2>/dev/null || stat -c %Y "$root/.lock" 2>/dev/null || echo 0)
age=$((now - beat))
why=
if [ "$force" = 1 ]; then why=broken
elif [ -n "$dead" ] && grep -qF -- "$dead" "$root/.lock/owner" 2>/dev/null; then why=dead
elif [ "$age" -gt "$ttl" ]; then why="expired $age"
fi
if [ -n "$why" ]; then
  rm -rf "$root/.lock"
  if take; then echo "$why"; stamp; exit 0; fi
fi
echo "held $age"
cat "$root/.lock/owner" 2>/dev/null
exit 3
"""

UNLOCK = r"""
# $1 app root  $2 token: only our own lock is removed (under the lock script's flock)
[ -d "$1" ] || exit 0
exec 9>>"$1/.lock.guard" && flock -w 30 9 || exit 5
owner=; { read -r owner < "$1/.lock/owner"; } 2>/dev/null
case $owner in *"$2"*) rm -rf "$1/.lock" ;; esac
"""

HEARTBEAT = r"""
# $1 app root  $2 token
exec 9>>"$1/.lock.guard" && flock -w 30 9 || exit 5
grep -qF -- "$2" "$1/.lock/owner" 2>/dev/null && touch "$1/.lock/owner"
"""

# The sha256 of a file, and whether every file SHA256SUMS lists (in the current directory)
# has its sha256. openssl's uses the CPU's SHA instructions: ~4x faster than sha256sum's
# on a 20 MB release (~15 ms against ~65 ms of a host's CPU at every deploy's check);
# sha256sum when openssl is missing or a name is escaped (a backslash, a newline).
SUMS = r"""
sha_of() {
  if command -v openssl >/dev/null 2>&1; then s=$(openssl dgst -sha256 -r "$1") || return 1
  else s=$(sha256sum < "$1") || return 1; fi
  printf '%s\n' "${s%% *}"
}
sums_ok() {
  command -v openssl >/dev/null 2>&1 || { sha256sum --quiet -c SHA256SUMS >&2; return; }
  want=; set --
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in \\*|'') sha256sum --quiet -c SHA256SUMS >&2; return ;; esac
    name=${line#* }; name=${name#[ *]}
    want="$want ${line%% *}"; set -- "$@" "./$name"
  done < SHA256SUMS
  [ $# -gt 0 ] || { echo "SHA256SUMS lists no file" >&2; return 1; }
  out=$(openssl dgst -sha256 -r "$@") || return 1
  got=
  while read -r h _; do got="$got $h"; done <<EOF
$out
EOF
  [ "$got" = "$want" ] || { echo "sha256 mismatch" >&2; return 1; }
}
"""

UNPACK = SUMS + r"""
# $1 archive  $2 expected sha256  $3 releases dir  $4 release id
set -e
got=$(sha_of "$1")
if [ "$got" != "$2" ]; then echo "archive sha256 mismatch: expected $2, got $got" >&2; exit 4; fi
tmp="$3/.$4.tmp"
rm -rf "$tmp"; mkdir -p "$tmp"
tar -xzf "$1" -C "$tmp" --no-same-owner
cd "$tmp"
if ! sums_ok; then
  cd /; rm -rf "$tmp"; echo "a file of the release does not match its sha256" >&2; exit 4
fi
printf '%s\n' "$2" > .archive-sha256
cd /
rm -rf "$3/$4"; mv "$tmp" "$3/$4"; rm -f "$1"
"""

HAS_RELEASE = SUMS + r"""
# $1 release dir  $2 archive sha256
marker=; { read -r marker < "$1/.archive-sha256"; } 2>/dev/null
[ "$marker" = "$2" ] && (cd "$1" && sums_ok 2>/dev/null) && echo yes || echo no
"""

LINK = r"""
# $1 link path  $2 target: atomic symlink swap
ln -sfn "$2" "$1.goship-tmp" && mv -Tf "$1.goship-tmp" "$1"
"""

APPEND = r"""
# $1 file  $2 line
printf '%s\n' "$2" >> "$1"
"""

WORKERS = r"""
# $1 pid file: the nginx master's worker pids, one per line
[ -f "$1" ] || exit 0
master=$(cat "$1")
for p in /proc/[0-9]*; do
  [ "$(awk '/^PPid:/{print $2}' "$p/status" 2>/dev/null)" = "$master" ] && echo "${p#/proc/}"
done
exit 0
"""

INSTALL_FILE = r"""
# $1 path  $2 mode  $3 sha256 of stdin: write stdin there unless the file already has that
# content; print "changed" or "same". The common case (the same unit files, the same
# environment at every deploy) costs one sha256sum, no temp file, cmp or rm.
set -e
if [ -f "$1" ]; then
  sum=$(sha256sum < "$1" 2>/dev/null) || sum=
  [ "${sum%% *}" = "$3" ] && { echo same; exit 0; }
fi
""" + WRITE_TEMP + r"""mv -f "$tmp" "$1"; echo changed
"""

# $1 path  $2 mode: stdin becomes the file only when none is there (its name holds a hash of
# its content: one there is the same). Shell builtins but for a first write (PUT_SCRIPT's).
ENSURE_FILE = '[ -f "$1" ] && exit 0\n' + PUT_SCRIPT

STANDBY_SLEEPER = r"""
# $1 pid file  $2 seconds  $3 the stop command (already quoted): a detached sleeper in its
# own session (its pid is its process group), so a later run can cancel it.
# The pid file goes after the command: a drain waiting for clients can still be cancelled.
setsid sh -c 'echo $$ > "$1"; sleep "$2"; eval "$3"; rm -f "$1"' goship-standby "$1" "$2" "$3" \
  </dev/null >/dev/null 2>&1 &
i=0; while [ ! -s "$1" ] && [ $i -lt 50 ]; do sleep 0.02; i=$((i + 1)); done
"""

STANDBY_CANCEL = r"""
# $1 pid file: stop the sleeper's whole process group, if it is still ours
[ -s "$1" ] || exit 0
pid=$(cat "$1")
if [ -n "$pid" ] && grep -q goship-standby "/proc/$pid/cmdline" 2>/dev/null; then
  # No "--": dash's kill takes none ("Illegal number"), and the group would live on.
  kill -TERM "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
fi
rm -f "$1"
exit 0
"""

INVENTORY = r"""
# $1 app root: releases on disk with their archive sha256 (R id sha), kept environments (E id)
cd "$1" 2>/dev/null || exit 0
for d in releases/*/; do
  [ -d "$d" ] || continue
  r=${d#releases/}; r=${r%/}
  sha=; { read -r sha < "$d.archive-sha256"; } 2>/dev/null
  printf 'R %s %s\n' "$r" "$sha"
done
for f in shared/envs/*; do [ -f "$f" ] && printf 'E %s\n' "${f#shared/envs/}"; done
# Leftovers of an aborted run: half-unpacked releases, uploads never unpacked.
for f in releases/.*.tmp incoming/*; do [ -e "$f" ] && printf 'L %s\n' "$f"; done
exit 0
"""

SYSTEMD_SCHEDULE = r"""
# $1 unit name  $2 delay (e.g. 600s; 0: now)  $3 description  $4.. the command the unit runs
# (a standby's stop, a drain's wait then stop): an earlier one of that name is forgotten.
# The units are made with --collect (gone once inactive or failed), so one of that name
# exists only while it waits or runs: systemd-run is tried first, and only when it finds
# one is that one stopped (one systemctl call per release instead of three).
name=$1; delay=$2; desc=$3; shift 3
run() {
  if [ "$delay" = 0 ]; then
    systemd-run --quiet --collect --no-block --unit="$name" --description="$desc" "$@"
  else
    systemd-run --quiet --collect --unit="$name" --on-active="$delay" \
      --timer-property=AccuracySec=1s --description="$desc" "$@"
  fi
}
run "$@" 2>/dev/null && exit 0
systemctl stop "$name.timer" "$name.service" 2>/dev/null
systemctl reset-failed "$name.timer" "$name.service" 2>/dev/null
run "$@"
"""

SYSTEMD_CANCEL = r"""
# $1 unit name: forget a scheduled stop (and a drain waiting for clients to leave). Stopped,
# a unit made with --collect is gone: no reset-failed.
systemctl stop "$1.timer" "$1.service" 2>/dev/null
exit 0
"""

SYSTEMD_ENABLE = r"""
# $1 how many units to enable, then those units, then the ones to disable
n=$1; shift
keep=""; i=0
while [ $i -lt "$n" ]; do keep="$keep $1"; shift; i=$((i + 1)); done
[ $# -gt 0 ] && systemctl disable --quiet --no-reload "$@" 2>/dev/null
# shellcheck disable=SC2086 (unit names are goship's own: app-color@port.service)
exec systemctl enable --quiet --no-reload $keep
"""

SYSTEMD_LINKS = r"""
# What `systemctl enable`/`disable --no-reload` do for goship's own units, without a
# systemctl each (and systemd's work for each): $1 the unit directory; $2.. up to "--":
# LINK TARGET pairs, the boot links of the units to start at boot (from their [Install]
# WantedBy=/RequiredBy=); then units boot starts no more: every .wants/.requires link of
# theirs goes, whatever [Install] said when it was made. A good link already there stays.
units_dir=$1; shift
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  link=$1; target=$2; shift 2
  { [ -L "$link" ] && [ -e "$link" ]; } && continue
  dir=${link%/*}; [ -d "$dir" ] || mkdir -p "$dir" || exit 1
  ln -sfn "$target" "$link" || exit 1
done
[ $# -gt 0 ] && shift
units="$*"  # goship's unit names: no blanks, no pattern characters
set --
for u in $units; do
  for l in "$units_dir"/*.wants/"$u" "$units_dir"/*.requires/"$u"; do
    [ -L "$l" ] && set -- "$@" "$l"
  done
done
[ $# -gt 0 ] && exec rm -f -- "$@"
exit 0
"""

# Established TCP connections whose local port is one of `want` (4-digit upper-case hex),
# from /proc/net/tcp{,6}: no ss or netstat needed. State 01 is ESTABLISHED.
_COUNT_AWK = r"""awk -v want="$want" 'BEGIN { n = split(want, w, " ")
    for (i = 1; i <= n; i++) p[w[i]] = 1 }
  $4 == "01" { split($2, a, ":"); if (a[2] in p) c++ } END { print c + 0 }'"""

CONNECTIONS = r"""
# $1.. ports: how many established TCP connections these local ports hold
want=""; for p in "$@"; do want="$want $(printf '%04X' "$p")"; done
cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | """ + _COUNT_AWK + "\n"

DRAIN_WAIT = r"""# Written by goship: the wait before an old color stops (run by a transient
# systemd unit or a detached sleeper, never by a deploy that waits for it).
# $1 seconds at most  $2.. the color's ports, then "--", then the stop command: wait while a
# client (through nginx) holds a connection to one of the ports, then run the stop.
end=$(( $(date +%s) + ${1%.*} )); shift
want=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do want="$want $(printf '%04X' "$1")"; shift; done
shift
count() { cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | """ + _COUNT_AWK + r"""; }
while [ "$(date +%s)" -lt "$end" ] && [ "$(count)" -gt 0 ]; do sleep 1; done
exec "$@"
"""
