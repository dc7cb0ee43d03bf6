#!/usr/bin/env bash
# kazoo's own test suite against batond's ZooKeeper listener.
#
# Fetches kazoo's source distribution (which carries kazoo/tests; the wheel does not) into a
# temporary directory and runs kazoo's tests with tests/zk/kazoo_shim.py standing in for the
# harness's Java cluster: the shim starts batond with --zk-listen on a loopback port the
# kernel picks (and stops and restarts it, same port and data, for the tests that restart
# the server). Nothing of kazoo is kept in this repository.
#
# Skipped, as they need what a single node does not have (the list is DESELECT below):
#   test_sasl.py                              SASL (Baton's listener serves no SASL)
#   TestSSLClient                             SSL/TLS on the client port
#   TestReconfig                              reconfig of a multi-server ensemble
#   TestReadOnlyMode                          read-only mode (stops 2 of 3 servers)
#   *::test_update_host_list                  a 3-server cluster, stops one server (x3 handlers)
# test_build.py skips itself outside kazoo's own CI; the gevent and eventlet tests run when
# those packages are installed (the script installs kazoo[test]'s extras when it may).
#
# Usage: tests/zk/kazoo-suite.sh [pytest args...]
# Env:   BATOND       the batond binary (default: $CARGO_TARGET_DIR or target, debug/batond)
#        KAZOO_VERSION (default 2.11.0)   KAZOO_SRC  an unpacked kazoo sdist to use instead
#        KAZOO_NO_INSTALL=1  do not pip-install the test dependencies
# Exit status: pytest's (0 when every selected test passed).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
batond="${BATOND:-${CARGO_TARGET_DIR:-$repo/target}/debug/batond}"
version="${KAZOO_VERSION:-2.11.0}"
[ -x "$batond" ] || { echo "no batond at $batond (cargo build --bins, or set BATOND)" >&2; exit 2; }

work="$(mktemp -d /tmp/kazoo-suite.XXXXXX)"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

if [ -z "${KAZOO_NO_INSTALL:-}" ]; then
  python3 -m pip install -q "kazoo[test]==$version" 2>&1 | grep -v -i "warning: running pip as" || true
fi
src="${KAZOO_SRC:-}"
if [ -z "$src" ]; then
  python3 -m pip download -q --no-binary :all: --no-deps "kazoo==$version" -d "$work/dl"
  tar -xzf "$work"/dl/kazoo-*.tar.gz -C "$work"
  src="$(echo "$work"/kazoo-*/)"
fi

mkdir -m 700 "$work/data"
# kazoo's harness gives its ZooKeeper the superuser digest super:test.
cat >"$work/batond.toml" <<'EOF'
superusers = ["uid:0", "digest:super:D/InIHSb7yEEbrWz8b9l71RjZJU="]
EOF
echo "kazoo $version from $src; batond $batond, its log in $work/batond.log"

DESELECT=(
  kazoo/tests/test_sasl.py
  kazoo/tests/test_client.py::TestSSLClient
  kazoo/tests/test_client.py::TestReconfig
  kazoo/tests/test_connection.py::TestReadOnlyMode
  kazoo/tests/test_client.py::TestClient::test_update_host_list
  kazoo/tests/test_eventlet_handler.py::TestEventletClient::test_update_host_list
  kazoo/tests/test_gevent_handler.py::TestGeventClient::test_update_host_list
)
args=()
for d in "${DESELECT[@]}"; do args+=(--deselect "$d"); done

status=0
(cd "$src" && BATOND="$batond" BATON_WORK="$work" PYTHONPATH="$here:$src" \
  python3 -m pytest -p kazoo_shim -p no:cacheprovider -q -ra --timeout=120 "${args[@]}" kazoo/tests "$@") || status=$?
if [ "$status" != 0 ]; then
  echo "--- batond log (last 50 lines)"
  tail -50 "$work/batond.log"
fi
exit "$status"
