#!/usr/bin/env bash
# How Baton's costs grow (issue 7, part 5): with the number of nodes (1 k -> 1 M), of idle
# sessions (1 -> 10 k) and of watchers on one node (1 -> 10 k), and with the size of values
# (100 B -> 1 MiB). Builds release batond and baton-bench, runs each curve against a fresh
# batond on a temporary data dir (loopback only; stops it by PID), and prints one Markdown
# table per curve; the JSON lines go to $KEEP_FIGURES when set.
#
# Usage: tests/bench/scaling.sh            (as root or not; needs `ulimit -n` >= 21000 for
#                                           10 k sessions: root can raise it, others lower
#                                           SESSIONS)
# Env:   NODES="1000,10000,100000,1000000"  SESSIONS="1,10,100,1000,10000"
#        SIZES="100,1024,10240,102400,1048576"  FANOUTS=20  KEEP_FIGURES=FILE
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
nodes="${NODES:-1000,10000,100000,1000000}"
sessions="${SESSIONS:-1,10,100,1000,10000}"
sizes="${SIZES:-100,1024,10240,102400,1048576}"
fanouts="${FANOUTS:-20}"
ulimit -n 21000 2>/dev/null || echo "could not raise the open-files limit to 21000 (now $(ulimit -n))" >&2

echo "== build" >&2
(cd "$repo" && cargo build --release -q -p batond -p baton-bench)
target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
bench="$target_dir/release/baton-bench"
batond="$target_dir/release/batond"

work="$(mktemp -d /var/tmp/baton-scaling.XXXXXX)"
figures="$work/figures.jsonl"
batond_pid=""
# shellcheck source=lib.sh
source "$repo/tests/bench/lib.sh"
cleanup() {
  set +e
  stop_batond
  [ -n "${KEEP_FIGURES:-}" ] && [ -f "$figures" ] && cp "$figures" "$KEEP_FIGURES"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Room for 10 k sessions: the default limits protect a shared host, this one is ours.
cat > "$work/batond.toml" <<'EOF'
connections_max = 20000
connections_per_peer_max = 20000
EOF
sock="$work/baton.sock"
start_batond() {
  mkdir -p -m 700 "$work/data"
  launched_at=$EPOCHREALTIME
  "$batond" --config "$work/batond.toml" --data-dir "$work/data" --socket "$sock" \
    >> "$work/batond.log" 2>&1 < /dev/null &
  batond_pid=$!
}
fresh_batond() {
  stop_batond
  rm -rf "$work/data"
  start_batond
  "$bench" --addr "$sock" startup --launched-at "$launched_at" --label warmup > /dev/null
}
bench() {
  echo "-- baton-bench $*" >&2
  "$bench" --json --reps 1 --session-timeout-ms 10000 --addr "$sock" "$@" | tee -a "$figures" >&2
}

echo "== nodes: $nodes" >&2
fresh_batond
from=0
IFS=, read -ra steps <<< "$nodes"
for to in "${steps[@]}"; do
  bench scale nodes --pid "$batond_pid" --data-dir "$work/data" --from "$from" --to "$to"
  from="$to"
  # Start-up with this many nodes: stop, start, time the first answer.
  stop_batond
  start_batond
  bench startup --launched-at "$launched_at" --label "nodes.$to"
  sleep 1
  echo "{\"target\":\"baton\",\"workload\":\"scale\",\"metric\":\"nodes.$to.rss_after_restart\",\"value\":$(awk '/VmRSS/ {print $2/1024}' "/proc/$batond_pid/status"),\"unit\":\"MiB\",\"min\":0,\"max\":0,\"reps\":1}" | tee -a "$figures" >&2
done

echo "== sessions and watchers: $sessions" >&2
fresh_batond
bench scale clients --pid "$batond_pid" --counts "$sessions" --fanouts "$fanouts"

echo "== value sizes: $sizes" >&2
fresh_batond
bench scale sizes --sizes "$sizes"
stop_batond

echo "== tables" >&2
python3 - "$figures" "$(cd "$repo" && git rev-parse --short HEAD)" <<'PY'
import json, sys, re, collections
rows = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    f = json.loads(line)
    m = f["metric"]
    if m.startswith("startup.nodes."):
        rows[("nodes", int(m.split(".")[2]))]["startup (ms)"] = f["value"]
        continue
    parts = m.split(".")
    if parts[0] in ("nodes", "sessions", "watchers", "size"):
        curve, step, what = parts[0], int(parts[1]), ".".join(parts[2:])
        unit = f["unit"]
        rows[(curve, step)][f"{what} ({unit})"] = f["value"]
def fmt(v):
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"
print(f"Measured by tests/bench/scaling.sh on batond {sys.argv[2]}.\n")
for curve, title in [("nodes", "nodes (100 B each)"), ("sessions", "idle sessions"), ("watchers", "watchers on one node"), ("size", "value size (bytes)")]:
    steps = sorted(s for (c, s) in rows if c == curve)
    if not steps:
        continue
    cols = []
    for s in steps:
        for k in rows[(curve, s)]:
            if k not in cols:
                cols.append(k)
    print(f"| {title} | " + " | ".join(cols) + " |")
    print("|---:|" + "---:|" * len(cols))
    for s in steps:
        print(f"| {s:,} | " + " | ".join(fmt(rows[(curve, s)][k]) if k in rows[(curve, s)] else "—" for k in cols) + " |")
    print()
PY
