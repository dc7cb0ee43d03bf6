#!/usr/bin/env bash
# Baton side by side with ZooKeeper and etcd, and with the machine's own limits, in one run.
#
#   sudo tests/bench/side-by-side.sh          # from the repository, as root
#
# Installs what is missing (Debian's zookeeper, etcd-server and protobuf-compiler; matplotlib
# from PyPI), builds release batond and baton-bench, starts ZooKeeper and etcd with
# ../shared/peers/start-*.sh and a batond on a fresh temporary data dir, runs every workload
# of baton-bench against all three, then writes docs/BENCHMARKS.md (the table of ratios against
# the targets) and docs/bench.png. Everything started here is stopped by PID and every
# temporary dir removed, also on failure or Ctrl-C.
#
# The two targets against ZooKeeper's throughput (64-client writes, lock hand-offs) are then
# measured again with Baton and ZooKeeper both up and their repetitions alternated, and those
# figures count. The report lists those rounds one by one, each with the host's steal time
# during it (/proc/stat), so a round the host slowed shows as such; nothing is corrected for it.
#
# Env: REPS (repetitions per workload, default 3), PAIRED_REPS (alternated repetitions of each
# of the two, default 5), PAIRED_WARMUP (uncounted rounds before them, default 4), FILL (nodes for the footprint and the loaded start-up, default 100000), PEERS_DIR (default ../shared/peers beside the repository),
# BENCH_OUT (default: the repository's docs/), KEEP_FIGURES (a file to copy the raw JSON to).
set -euo pipefail
export LC_ALL=C

repo="$(cd "$(dirname "$0")/../.." && pwd)"
peers="${PEERS_DIR:-$(cd "$repo/.." && pwd)/shared/peers}"
reps="${REPS:-3}"
paired_reps="${PAIRED_REPS:-5}"
paired_warmup="${PAIRED_WARMUP:-4}"
fill="${FILL:-100000}"
out_dir="${BENCH_OUT:-$repo/docs}"
export BENCH_RUN_DIR="${BENCH_RUN_DIR:-/var/tmp/baton-peers}"

[ "$(id -u)" = 0 ] || { echo "side-by-side.sh: run as root (it installs packages and starts servers)" >&2; exit 2; }
[ -x "$peers/start-zk.sh" ] || { echo "side-by-side.sh: no peer scripts in $peers (set PEERS_DIR)" >&2; exit 2; }

echo "== packages" >&2
need=""
[ -f /usr/share/java/zookeeper.jar ] || need="$need zookeeper"
[ -x /usr/bin/etcd ] || need="$need etcd-server"
command -v protoc >/dev/null 2>&1 || need="$need protobuf-compiler"
command -v curl >/dev/null 2>&1 || need="$need curl"
if [ -n "$need" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install -q matplotlib

# Servers already running (a batond left from earlier measurements, another ZooKeeper) take
# CPU from the run: the report says so rather than the figures hiding it.
others="$(ps -eo pid=,comm= | awk '$2 == "batond" || $2 == "java" || $2 == "etcd" {print $2 " (PID " $1 ")"}' | paste -sd, - | sed 's/,/, /g')"
[ -z "$others" ] || echo "side-by-side.sh: other servers are running and will share the CPU: $others" >&2

work="$(mktemp -d /var/tmp/baton-bench.XXXXXX)"
echo "== build" >&2
target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
# batond exactly as README's install builds it (the benchmark's etcd feature would build its
# dependencies with other features, and daemon/idle-code.ld's layout is made for this build).
(cd "$repo" && cargo build --release -q --locked --bins)
batond="$work/batond"
cp "$target_dir/release/batond" "$batond"
(cd "$repo" && cargo build --release -q -p baton-bench --features baton-bench/etcd)
bench="$target_dir/release/baton-bench"
figures="$work/figures.jsonl"
batond_pid=""
zk_pidfile=""
etcd_pidfile=""

# shellcheck source=lib.sh
source "$repo/tests/bench/lib.sh"

cleanup() {
  set +e
  stop_batond
  [ -n "$zk_pidfile" ] && [ -f "$zk_pidfile" ] && "$peers/stop-zk.sh" "$zk_pidfile"
  [ -n "$etcd_pidfile" ] && [ -f "$etcd_pidfile" ] && "$peers/stop-etcd.sh" "$etcd_pidfile"
  [ -n "${KEEP_FIGURES:-}" ] && [ -f "$figures" ] && cp "$figures" "$KEEP_FIGURES"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# bench ARGS...: one baton-bench run, its JSON lines appended to the figures.
bench() {
  echo "-- baton-bench $*" >&2
  "$bench" --json --reps "$reps" "$@" | tee -a "$figures" >&2
}

# start_batond: launch batond on $work/baton (empty or not); sets batond_pid and launched_at.
start_batond() {
  mkdir -p -m 700 "$work/baton/data"
  launched_at=$EPOCHREALTIME
  "$batond" --data-dir "$work/baton/data" --socket "$work/baton/baton.sock" \
    >> "$work/baton/batond.log" 2>&1 < /dev/null &
  batond_pid=$!
}

# relaunch PIDFILE STOP_SCRIPT: stop the peer in PIDFILE keeping its data dir, then start the
# very same command line again (same data dir and ports); sets launched_at.
relaunch() {
  local pidfile="$1" stop="$2" pid argv
  pid="$(cat "$pidfile")"
  mapfile -d '' argv < "/proc/$pid/cmdline"
  KEEP_DATA=1 "$stop" "$pidfile"
  launched_at=$EPOCHREALTIME
  # In a subshell, so that the server is not this shell's child (the stop scripts wait for
  # /proc/PID to go, which a zombie child would delay).
  (setsid "${argv[@]}" >> "$(dirname "$pidfile")/relaunch.log" 2>&1 < /dev/null & echo $! > "$pidfile")
}

# startup_median LABEL RELAUNCH BENCH_ARGS...: the start-up figure as the median of $reps
# launches, like every other figure. The first is the one just made (at $launched_at); the
# command RELAUNCH stops the server and starts it again on the same data (or, for batond's
# empty start, on a fresh data dir), setting launched_at. One launch gives one figure, so a
# single stall of the machine would otherwise decide it.
startup_median() {
  local label="$1" relaunch_cmd="$2" runs="$work/startup.jsonl" i
  shift 2
  : > "$runs"
  for i in $(seq 1 "$reps"); do
    [ "$i" -gt 1 ] && $relaunch_cmd
    echo "-- baton-bench $* startup --label $label (launch $i of $reps)" >&2
    "$bench" --json --reps 1 "$@" startup --launched-at "$launched_at" --label "$label" | tee -a "$runs" >&2
  done
  python3 - "$runs" >> "$figures" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
values = [r["value"] for r in runs]
figure = dict(runs[0], value=statistics.median(values), min=min(values), max=max(values), reps=len(values))
print(json.dumps(figure))
PY
}
restart_batond() { stop_batond; start_batond; }
restart_batond_empty() { stop_batond; rm -rf "$work/baton"; start_batond; }
restart_zk() { relaunch "$zk_pidfile" "$peers/stop-zk.sh"; }
restart_etcd() { relaunch "$etcd_pidfile" "$peers/stop-etcd.sh"; }

echo "== the machine's limits (data filesystem: $(df --output=fstype "$work" | tail -1))" >&2
bench limits --dir "$work"

echo "== baton" >&2
start_batond
startup_median empty restart_batond_empty --target baton --addr "$work/baton/baton.sock"
sleep 1
bench --target baton --addr "$work/baton/baton.sock" footprint --pid "$batond_pid" --data-dir "$work/baton/data"
bench --target baton --addr "$work/baton/baton.sock" all
bench --target baton --addr "$work/baton/baton.sock" --reps 1 footprint --pid "$batond_pid" \
  --data-dir "$work/baton/data" --fill "$fill" --label loaded
restart_batond
startup_median loaded restart_batond --target baton --addr "$work/baton/baton.sock"
stop_batond

echo "== zookeeper" >&2
eval "$(NO_WAIT=1 "$peers/start-zk.sh")"
zk_pidfile="$PIDFILE"
launched_at=$LAUNCHED_AT
startup_median empty restart_zk --target zk --addr "$ADDR"
sleep 1
bench --target zk --addr "$ADDR" footprint --pid "$(cat "$zk_pidfile")" --data-dir "$DIR/data"
bench --target zk --addr "$ADDR" all
bench --target zk --addr "$ADDR" --reps 1 footprint --pid "$(cat "$zk_pidfile")" --data-dir "$DIR/data" \
  --fill "$fill" --label loaded
restart_zk
startup_median loaded restart_zk --target zk --addr "$ADDR"
"$peers/stop-zk.sh" "$zk_pidfile"
zk_pidfile=""

echo "== etcd" >&2
eval "$(NO_WAIT=1 "$peers/start-etcd.sh")"
etcd_pidfile="$PIDFILE"
launched_at=$LAUNCHED_AT
startup_median empty restart_etcd --target etcd --addr "http://$ADDR"
sleep 1
bench --target etcd --addr "http://$ADDR" footprint --pid "$(cat "$etcd_pidfile")" --data-dir "$DIR/data"
bench --target etcd --addr "http://$ADDR" all
bench --target etcd --addr "http://$ADDR" --reps 1 footprint --pid "$(cat "$etcd_pidfile")" \
  --data-dir "$DIR/data" --fill "$fill" --label loaded
restart_etcd
startup_median loaded restart_etcd --target etcd --addr "http://$ADDR"
"$peers/stop-etcd.sh" "$etcd_pidfile"
etcd_pidfile=""

# The two targets that compare throughput with ZooKeeper's, measured again with both servers
# up and their repetitions alternated (each first in every other round), so that a machine
# that speeds up or slows down over the minutes between the blocks above does not decide the
# ratio. These figures replace the blocks' for the same workloads.
echo "== paired with zookeeper" >&2
rm -rf "$work/baton"
start_batond
for _ in $(seq 1 100); do [ -S "$work/baton/baton.sock" ] && break; sleep 0.05; done
eval "$("$peers/start-zk.sh")"
zk_pidfile="$PIDFILE"
paired="$work/paired.jsonl"
# The host's steal time (what it ran instead of this machine's vCPUs) over each repetition:
# a serial chain like the lock's loses far more than its share when it is taken. Recorded,
# not corrected for.
steal="$work/steal.txt"
: > "$steal"
: > "$work/warmup.jsonl"
: > "$paired"
# cpu_ticks: "STEAL ALL" of /proc/stat's cpu line, all vCPUs summed.
cpu_ticks() { awk '/^cpu /{all = 0; for (i = 2; i <= 9; i++) all += $i; print $9, all}' /proc/stat; }
# paired_bench ROUND SERVER RECORD WORKLOAD...: one repetition against baton or zk, appended to
# RECORD, and its host steal to $steal.
paired_bench() {
  local round="$1" server="$2" record="$3" args before after
  shift 3
  args=(--target baton --addr "$work/baton/baton.sock")
  [ "$server" = zk ] && args=(--target zk --addr "$ADDR")
  echo "-- baton-bench ${args[*]} --reps 1 $*" >&2
  before="$(cpu_ticks)"
  "$bench" --json --reps 1 "${args[@]}" "$@" | tee -a "$record" >&2
  after="$(cpu_ticks)"
  echo "$round $server $1 $before $after" | awk '{printf "%s %s %s %.2f\n", $1, $2, $3, 100 * ($6 - $4) / ($7 - $5)}' \
    | tee -a "$steal" | awk '{print "-- host steal " $4 " %"}' >&2
}
# The first rounds warm both up and are not counted. A fresh ZooKeeper's JIT needs four: over
# 12 alternated rounds (2026-11-27) its lock hand-offs went 691 / 986 / 1,688 / 1,419 /s and
# then held at 1,397-2,094, its 64-client writes 10,581 / 15,228 / 21,971 / 22,470 and then
# 22,780-32,026; with 2 warm-up rounds the counted ones still caught it warming.
for round in $(seq $((1 - paired_warmup)) "$paired_reps"); do
  record="$paired"
  [ "$round" -le 0 ] && record="$work/warmup.jsonl"
  order="baton zk"
  [ $((round % 2)) = 0 ] && order="zk baton"
  for workload in "write --clients 64" "lock"; do
    for server in $order; do
      # shellcheck disable=SC2086
      paired_bench "$round" "$server" "$record" $workload
    done
  done
done
"$peers/stop-zk.sh" "$zk_pidfile"
zk_pidfile=""
stop_batond
python3 "$repo/tests/bench/report.py" --fold "$paired" >> "$figures"

echo "== report" >&2
versions="zookeeper $(dpkg-query -W -f '${Version}' zookeeper), etcd $(dpkg-query -W -f '${Version}' etcd-server)"
versions="$versions, batond $(cd "$repo" && git rev-parse --short HEAD)"
mkdir -p "$out_dir"
python3 "$repo/tests/bench/report.py" --figures "$figures" --markdown "$out_dir/BENCHMARKS.md" \
  --chart "$out_dir/bench.png" --versions "$versions" --reps "$reps" \
  --paired "$paired_reps,$paired_warmup" \
  --fill "$fill" --others "$others" \
  --steal "$steal" --paired-warmup-figures "$work/warmup.jsonl" --paired-figures "$paired"
echo "wrote $out_dir/BENCHMARKS.md and $out_dir/bench.png" >&2
