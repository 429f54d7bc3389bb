#!/usr/bin/env bash
# Stop the native dev stack started by up.sh (FerretDB, Kafka, both PostgreSQL clusters).
#   down.sh          stop the services, keep their data
#   down.sh --purge  stop them and delete the state dir (data, logs, pid files)
# Idempotent: never fails when nothing is running. Stops the stack of $ORDERS_NATIVE_STATE
# (default deploy/native/.state) by its pid files, whatever ports up.sh gave it.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${ORDERS_NATIVE_STATE:-$SCRIPT_DIR/.state}
PG_BIN=${ORDERS_PG_BIN:-/usr/lib/postgresql/15/bin}
STOP_WAIT=${ORDERS_NATIVE_STOP_WAIT_SECS:-30}
PURGE=0
for a in "$@"; do
  case $a in
    --purge) PURGE=1 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
  esac
done

log() { printf '[down] %s\n' "$*" >&2; }

# stop_pid NAME PIDFILE PATTERN: SIGTERM, wait up to STOP_WAIT s, then SIGKILL.
# Only signals the pid if its command line still contains PATTERN (no stale-pid accidents).
stop_pid() {
  local name=$1 f=$2 pat=$3 pid i
  if [[ ! -s $f ]]; then log "$name: not running (no pid file)"; return 0; fi
  pid=$(head -n1 "$f")
  if ! [[ $pid =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null \
     || ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pat"; then
    log "$name: not running (stale pid file)"; rm -f "$f"; return 0
  fi
  log "$name: stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_WAIT * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: still alive after ${STOP_WAIT}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$f"
  log "$name: stopped"
}

# stop_cluster NAME: the PostgreSQL cluster of $STATE/NAME.
stop_cluster() {
  local name=$1 data pid owner
  # resolve a symlinked cluster dir (up.sh may keep it in /var/tmp): the postgres
  # OS user may be unable to traverse $STATE itself
  data="$(readlink -f "$STATE/$name" 2>/dev/null || echo "$STATE/$name")/data"
  if [[ ! -s $data/postmaster.pid ]]; then log "$name: not running"; return 0; fi
  pid=$(head -n1 "$data/postmaster.pid")
  if ! kill -0 "$pid" 2>/dev/null; then log "$name: not running (stale postmaster.pid)"; return 0; fi
  log "$name: stopping pid $pid"
  owner=$(stat -c %U "$data")
  local ctl=("$PG_BIN/pg_ctl" -D "$data" -m fast -w -t "$STOP_WAIT" stop)
  if [[ $(id -u) -eq 0 && $owner != root ]]; then ctl=(runuser -u "$owner" -- "${ctl[@]}"); fi
  if ! "${ctl[@]}" >/dev/null 2>&1; then
    log "$name: pg_ctl stop failed or timed out, sending SIGQUIT then SIGKILL"
    kill -QUIT "$pid" 2>/dev/null || true; sleep 2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  log "$name: stopped"
}

if [[ -d $STATE ]]; then
  stop_pid ferretdb "$STATE/run/ferretdb.pid" ferretdb
  stop_pid kafka "$STATE/run/kafka.pid" kafka.Kafka
  stop_cluster postgres
  stop_cluster ferretdb-pg
else
  log "nothing to stop (no state dir $STATE)"
fi

if ((PURGE)); then
  # the PostgreSQL clusters may live outside the state dir (see up.sh) behind a symlink
  for cluster in postgres ferretdb-pg; do
    if [[ -L $STATE/$cluster ]]; then rm -rf "$(readlink -f "$STATE/$cluster")"; fi
  done
  rm -rf "$STATE"
  log "purged $STATE"
fi
