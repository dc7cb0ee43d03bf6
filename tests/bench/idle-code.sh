#!/usr/bin/env bash
# Regenerates daemon/idle-code.ld: the functions an idle batond has run (start-up on an empty
# data dir, a session that reads and closes, a few requests, periodic ticks), which daemon/build.rs has the linker
# place together so that the code an idle daemon never runs is never faulted in. Run it after
# larger changes to start-up or to the dependencies; a stale list costs memory, not
# correctness. Needs valgrind (callgrind) and python3; loopback only; stops batond by PID.
#
# Usage: tests/bench/idle-code.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
# The binaries as README's install builds them (one feature set, so one set of hashes for the
# instances of generics); tests/bench/side-by-side.sh measures that build too.
(cd "$repo" && cargo build --release -q --locked --bins)
target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
work="$(mktemp -d /var/tmp/baton-idle-code.XXXXXX)"
batond_pid=""
# shellcheck source=lib.sh
source "$repo/tests/bench/lib.sh"
trap 'stop_batond; rm -rf "$work"' EXIT

valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/cg.%p" \
  "$target_dir/release/batond" --data-dir "$work/data" --socket "$work/s.sock" 2>"$work/log" &
batond_pid=$!
for _ in $(seq 1 600); do [ -S "$work/s.sock" ] && break; sleep 0.1; done
# What side-by-side.sh does before it measures the idle footprint: the start-up probe (a
# session, a read, the session closed: a durable write), then the footprint's own requests.
"$target_dir/release/baton-bench" --target baton --addr "$work/s.sock" startup \
  --launched-at "$EPOCHREALTIME" --label empty >/dev/null
sleep 1
"$target_dir/release/baton-bench" --target baton --addr "$work/s.sock" footprint \
  --pid "$batond_pid" --data-dir "$work/data" >/dev/null
sleep 3 # a few periodic ticks
callgrind_control -d "$batond_pid" >/dev/null
for _ in $(seq 1 100); do ls "$work"/cg.*.1 >/dev/null 2>&1 && break; sleep 0.1; done
sleep 1
stop_batond

nm "$target_dir/release/batond" >"$work/nm"
python3 - "$work"/cg.*.1 "$work/nm" "$(rustc --version)" >"$repo/daemon/idle-code.ld" <<'PY'
"""Functions of batond's own object with any cost in the callgrind dump, as section globs."""
import collections, re, sys

names, objects, cost = {}, {}, {}
ob = fn = None
skip_next = False
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"^(c?ob|c?fn|c?fi|c?fl|fe)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
    if m:
        key, ident, name = m.groups()
        table = objects if key.endswith("ob") else names if key.endswith("fn") else None
        if table is not None and name is not None:
            table[ident] = name
        if key == "ob":
            ob = objects[ident]
        elif key == "fn":
            fn = names[ident]
        continue
    if line.startswith("calls="):
        skip_next = True  # the next line is the call's inclusive cost
        continue
    if line[:1].isdigit() or line[:1] in "+-*":
        if skip_next:
            skip_next = False
            continue
        if ob and ob.endswith("/batond"):
            cost[fn] = cost.get(fn, 0) + int(line.split()[1])

def unhashed(symbol):
    return re.sub(r"17h[0-9a-f]{16}E$", "17h*E", symbol)

# A name shared by several instances of a generic keeps its hash (only the instance run is
# wanted); a unique one loses it, so that it survives a change of the crates' metadata.
in_binary = [line.split()[-1] for line in open(sys.argv[2])]
instances = collections.Counter(unhashed(name) for name in in_binary)

def glob(symbol):
    symbol = re.sub(r"'\d+$", "", symbol)  # callgrind's mark for a recursion level
    if instances[unhashed(symbol)] <= 1:
        symbol = unhashed(symbol)  # legacy mangling's hash
    symbol = re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", symbol)  # v0 mangling's crate disambiguator
    symbol = re.sub(r"\.llvm\.\d+$", ".llvm.*", symbol)
    return symbol

# Valgrind has no AVX-512, so code that picks its variant by CPU feature at run time ran
# its AVX2 variant under callgrind; the daemon on a machine with AVX-512 runs the sibling
# (redb's xxh3 checksum), which, left out, faulted in 64 KiB of code elsewhere.
def digitless(symbol):
    return re.sub(r"\d+", "#", unhashed(symbol))  # "avx2" and "avx512" alike, lengths too

avx512 = [name for name in in_binary if "avx512" in name]
run = dict(cost)
for symbol in [s for s in cost if "avx2" in s]:
    for sibling in avx512:
        if digitless(sibling) == digitless(symbol):
            run.setdefault(sibling, 0)

# Run or not by a race, so callgrind may miss them; a page-fault trace of the native daemon
# caught each in one or two starts of eight or ten: tokio's slow path for dropping a task's
# JoinHandle (the task not finished yet), its timers (whether a timeout's timer is polled,
# fires or is removed first depends on timing) and std's wait for a mutex found locked. All
# their instances, ~20 KiB. Likewise std's channel when a receive finds it empty and blocks
# (with the thread-local setup that goes with it): a list regenerated without them on
# 2026-11-27 left the idle daemon 0.3-0.5 MiB larger. Their 19 instances, ~8 KiB.
RACY = re.compile(
    r"_ZN5tokio7runtime4task3raw21drop_join_handle_slow17h"
    r"|_ZN5tokio4time|_ZN5tokio7runtime4time"
    r"|_RNv.*5mutex5futex.*5Mutex14lock_contended"
    r"|_RNv.*3std4sync4mpmc|_ZN3std4sync4mpmc"
    r"|_RNv.*3std6thread7current12init_current"
    r"|_ZN3std3sys12thread_local6native4lazy20Storage.*get_or_init_slow"
)
for name in in_binary:
    if RACY.match(name):
        run.setdefault(name, 0)

patterns = []
for symbol, _ in sorted(run.items(), key=lambda kv: -kv[1]):
    g = glob(symbol)
    # (a function callgrind could not name is only an address: nothing to place)
    if g not in patterns and re.fullmatch(r"[\w$.*]+", g) and not g.startswith("0x"):
        patterns.append(g)
print("/* Generated by tests/bench/idle-code.sh: the functions an idle batond runs, hottest first.")
print("   daemon/build.rs passes this to the linker. The rest of the code joins .text after these,")
print("   and INSERT keeps the default layout otherwise. tests/bench/idle-code-check.sh checks that")
print("   it still fits the build (CI runs it).")
print(f"   Made with {sys.argv[3]}. */")
print("SECTIONS {")
print("  .text : {")
for g in patterns:
    # LLVM puts functions it deems cold in .text.unlikely.NAME
    print(f"    *(.text.{g} .text.unlikely.{g})")
print("  }")
print("} INSERT BEFORE .init;")
PY
echo "daemon/idle-code.ld: $(grep -c '^    \*' "$repo/daemon/idle-code.ld") functions" >&2
