#!/usr/bin/env bash
# Checks that daemon/idle-code.ld still fits the release build: every function it names with
# its exact mangling hash (an instance of a generic, where several share a name) must be in
# the binary. The linker skips a name that matches nothing, so a list gone stale costs no
# correctness, only memory, and nothing else would say so: a change to a type that a generic
# is instantiated with, or to a dependency's features, changes those hashes. On 2026-11-27 a
# feature added to nix changed 222 of the 345, and the idle daemon's resident code grew by
# 1.3 MiB (the idle RSS goal is 5 MiB). The fix is to regenerate the list with
# tests/bench/idle-code.sh.
#
# Skipped, with a message, under another rustc than the list's or on another architecture
# than x86_64: every hash differs there, and daemon/build.rs passes the list only on x86_64.
#
# Usage: tests/bench/idle-code-check.sh [BATOND]   (default: the release build of README's
#        install command, `cargo build --release --locked --bins`, which it runs)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
list="$repo/daemon/idle-code.ld"
if [ "$(uname -m)" != x86_64 ]; then
  echo "idle-code check skipped: the list is for x86_64 builds, this is $(uname -m)" >&2
  exit 0
fi
made_with="$(sed -n 's/^ *Made with \(rustc .*\)\. \*\/$/\1/p' "$list")"
if [ "$made_with" != "$(rustc --version)" ]; then
  echo "idle-code check skipped: the list was made with ${made_with:-an unrecorded rustc}, this is $(rustc --version)" >&2
  exit 0
fi
batond="${1:-}"
if [ -z "$batond" ]; then
  (cd "$repo" && cargo build --release -q --locked --bins)
  target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  batond="$target_dir/release/batond"
fi
python3 - "$list" "$batond" <<'PY'
import re, subprocess, sys

listed = re.findall(r"^\s*\*\(\.text\.(\S+) ", open(sys.argv[1]).read(), re.M)
exact = [name for name in listed if "*" not in name]
symbols = set(subprocess.run(["nm", sys.argv[2]], capture_output=True, text=True, check=True).stdout.split())
if len(symbols) < 1000:
    sys.exit(f"{sys.argv[2]} has no symbol table to check (stripped?)")
missing = [name for name in exact if name not in symbols]
print(f"idle-code check: {len(exact) - len(missing)} of the {len(exact)} functions daemon/idle-code.ld names exactly are in {sys.argv[2]}", file=sys.stderr)
if missing:
    for name in missing[:10]:
        print(f"  gone: {name}", file=sys.stderr)
    sys.exit("daemon/idle-code.ld no longer fits the build (an idle daemon keeps more of its code resident): regenerate it with tests/bench/idle-code.sh")
PY
