#!/usr/bin/env bash
# Data-parallel training on this machine, the way torchrun starts a run:
#   scripts/launch.sh -n N [--threads T] <trainer> <flags...>
# starts N processes of <trainer> (a path, or a name found in build/ or on
# PATH) with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1 and a free
# MASTER_PORT. Rank 0's output is printed as it is; the other ranks print
# only warnings and errors, prefixed with their rank. If one process fails,
# the others are stopped; Ctrl-C and SIGTERM reach every rank (each stops
# cleanly after its current step, rank 0 saving a resumable checkpoint).
# Without --threads, each rank gets the machine's cores divided by N.
set -uo pipefail
usage() {
  echo "usage: scripts/launch.sh -n N [--threads T] <trainer> <flags...>" >&2
  exit 2
}
n=""
threads=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n) n="${2:-}"; shift 2 ;;
    --threads) threads="${2:-}"; shift 2 ;;
    -h|--help) usage ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || usage
case "$n" in ''|*[!0-9]*|0) echo "launch.sh: -n needs a positive number of processes, got '$n'" >&2; exit 2 ;; esac
trainer="$1"
shift
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${DNN_GATING_BUILD_DIR:-$here/build}"
if [ -x "$trainer" ] && [[ "$trainer" == */* ]]; then
  program="$trainer"
elif [ -x "$build/$trainer" ]; then
  program="$build/$trainer"
elif command -v "$trainer" >/dev/null; then
  program="$(command -v "$trainer")"
else
  echo "launch.sh: trainer '$trainer' is neither a path, nor in $build, nor on PATH" >&2
  exit 2
fi
if [ -z "$threads" ]; then
  cores=$(nproc 2>/dev/null || echo 1)
  threads=$(( cores / n ))
  [ "$threads" -ge 1 ] || threads=1
fi
# A port nothing listens on, outside the kernel's ephemeral range: a port
# there may be the local end of any connection (Gloo's own among them), and
# binding it would fail even though nothing listens.
{ read -r eph_low eph_high < /proc/sys/net/ipv4/ip_local_port_range; } 2>/dev/null ||
  { eph_low=32768; eph_high=60999; }
if [ "$eph_low" -ge 12024 ]; then
  port_low=$(( eph_low - 10000 )); port_span=10000
elif [ "$eph_high" -le 55000 ]; then
  port_low=$(( eph_high + 1 )); port_span=10000
else  # the ephemeral range leaves no room: any port, as before
  port_low=20000; port_span=40000
fi
port=""
for _ in $(seq 1 50); do
  candidate=$(( port_low + (RANDOM * 32768 + RANDOM) % port_span ))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
    port=$candidate
    break
  fi
done
[ -n "$port" ] || { echo "launch.sh: found no free port on 127.0.0.1" >&2; exit 1; }

pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill -"$1" "$pid" 2>/dev/null; done
}
trap 'stop_all INT' INT
trap 'stop_all TERM' TERM
for (( rank = 0; rank < n; rank++ )); do
  # In a session of its own: a terminal's Ctrl-C reaches this script alone,
  # which passes it on once (a second signal would stop a rank at once).
  if [ "$rank" -eq 0 ]; then
    RANK=$rank WORLD_SIZE=$n LOCAL_RANK=$rank MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      setsid "$program" "$@" --threads "$threads" &
  else
    RANK=$rank WORLD_SIZE=$n LOCAL_RANK=$rank MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      setsid "$program" "$@" --threads "$threads" > >(sed -u "s/^/[rank $rank] /") 2>&1 &
  fi
  pids+=($!)
done
# The first failure stops the rest; the run's status is the first non-zero one.
status=0
running=("${pids[@]}")
while [ ${#running[@]} -gt 0 ]; do
  still=()
  for pid in "${running[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      still+=("$pid")
      continue
    fi
    wait "$pid"
    code=$?
    if [ "$code" -ne 0 ] && [ "$status" -eq 0 ]; then
      status=$code
      # A rank stopped by a signal: the others stop at the same step. A
      # failure: stop them, and kill any still waiting for it after 10 s.
      if [ "$code" -ne 130 ] && [ "$code" -ne 143 ]; then
        stop_all TERM
        ( sleep 10; stop_all KILL ) 2>/dev/null &
      fi
    fi
  done
  running=("${still[@]}")
  [ ${#running[@]} -eq 0 ] || sleep 0.2
done
exit "$status"
