# Sourced by the set-up scripts: one line per stage on stderr, the tools' own output in a log
# that is printed (its tail, and where it is) when a step fails. Set STAGE_NAME and STAGE_LOG.
# shellcheck shell=bash

stage() { printf '%s: %s\n' "$STAGE_NAME" "$*" >&2; }

elapsed() {  # elapsed SECONDS: 75 -> "1m15s"
  if (($1 >= 60)); then printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); else printf '%ds' "$1"; fi
}

# logged CMD...: run CMD with its output appended to the log; on failure show the log's tail.
logged() {
  printf '\n$ %s\n' "$*" >>"$STAGE_LOG"
  local status=0 start=$SECONDS
  "$@" >>"$STAGE_LOG" 2>&1 || status=$?
  printf '(exit %d after %s)\n' "$status" "$(elapsed $((SECONDS - start)))" >>"$STAGE_LOG"
  if ((status != 0)); then
    stage "failed (exit $status): $*"
    stage "the last ${STAGE_TAIL:-40} lines of $STAGE_LOG (the whole output is there):"
    tail -n "${STAGE_TAIL:-40}" "$STAGE_LOG" >&2
  fi
  return "$status"
}

# heartbeat WHAT CMD...: as logged, printing every ${STAGE_HEARTBEAT:-30} s the time so far and
# the build's last [done/total] step from the log (CMake and Ninja print them), so that a
# long compile never looks like a hang.
heartbeat() {
  local what="$1" start=$SECONDS last=$SECONDS progress
  shift
  logged "$@" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if ((SECONDS - last >= ${STAGE_HEARTBEAT:-30})) && kill -0 "$pid" 2>/dev/null; then
      last=$SECONDS
      progress="$(grep -ao '\[ *[0-9]*/[0-9]*\]' "$STAGE_LOG" | tail -n 1 | tr -d ' ' || true)"
      stage "  $what: $(elapsed $((SECONDS - start))) so far${progress:+, build step ${progress}}"
    fi
  done
  wait "$pid"
}
