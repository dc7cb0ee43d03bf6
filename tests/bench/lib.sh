# Shared by side-by-side.sh and scaling.sh (sourced, not run).

# stop_batond: stop the batond this script started ($batond_pid), by its PID: SIGTERM, then
# SIGKILL if it has not gone within 10 s.
stop_batond() {
  if [ -n "$batond_pid" ] && [ -d "/proc/$batond_pid" ]; then
    kill -TERM "$batond_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do [ -d "/proc/$batond_pid" ] || break; sleep 0.1; done
    [ -d "/proc/$batond_pid" ] && kill -KILL "$batond_pid" 2>/dev/null || true
    wait "$batond_pid" 2>/dev/null || true
  fi
  batond_pid=""
}
