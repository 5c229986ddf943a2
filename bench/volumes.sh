#!/bin/bash
# Volume benchmarks: median wall time of `berth volume create` (target <= 2 ms) and of
# `berth volume ls` with 10,000 volumes (target <= 100 ms), on a private temporary root.
#
#   sudo bench/volumes.sh [-n CREATES] [-l LS_RUNS] [--volumes N] [--via-cli] [--root-dir DIR]
#
# The 10,000 volumes for the ls run are made, by default, the way a crash-free create leaves them:
# one sqlite3 transaction inserting ready rows plus their volumes/<name>/_data directories (needs
# the sqlite3 CLI). --via-cli makes them with `berth volume create` instead, in 4 parallel loops
# (slow: one process per volume). The root is removed at the end.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
berth=${BERTH_BIN:-"${BERTH_BUILD_DIR:-$repo/build}/src/cli/berth"}
creates=200
ls_runs=15
count=10000
via_cli=0
root_dir=${TMPDIR:-/var/tmp}
while [ $# -gt 0 ]; do
  case "$1" in
    -n) creates=$2; shift 2 ;;
    -l) ls_runs=$2; shift 2 ;;
    --volumes) count=$2; shift 2 ;;
    --via-cli) via_cli=1; shift ;;
    --root-dir) root_dir=$2; shift 2 ;;
    *) echo "usage: $0 [-n CREATES] [-l LS_RUNS] [--volumes N] [--via-cli] [--root-dir DIR]" >&2; exit 2 ;;
  esac
done
[ -x "$berth" ] || { echo "berth not found: $berth (build it or set BERTH_BIN)" >&2; exit 1; }
root=$(mktemp -d "$root_dir/berth-bench-volumes.XXXXXX")
trap 'rm -rf "$root"' EXIT

# Children's CPU (user + sys) so far in ms, from bash's `times` written to a file by this shell
# (in a pipe or $(…) it would run in a child, which has no children).
children_cpu_ms() {
  tail -1 "$1" | tr 'ms' '  ' | awk '{printf "%d", ($1 * 60 + $2 + $3 * 60 + $4) * 1000}'
}

# measure LABEL RUNS CMD…: median wall time ($EPOCHREALTIME: no fork for the clock) and mean CPU
# time per run. On a loaded machine wall time is mostly waiting; CPU time is the work. "%d" in
# CMD is replaced by the run number.
measure() {
  local label=$1 runs=$2 i t0 t1 c0 c1
  shift 2
  : >"$root/.samples"
  times >"$root/.times0"
  for i in $(seq 1 "$runs"); do
    local args=("${@//%d/$i}")
    t0=$EPOCHREALTIME
    "${args[@]}" >/dev/null
    t1=$EPOCHREALTIME
    echo $((${t1/./} - ${t0/./})) >>"$root/.samples"
  done
  times >"$root/.times1"
  c0=$(children_cpu_ms "$root/.times0")
  c1=$(children_cpu_ms "$root/.times1")
  sort -n "$root/.samples" | awk -v label="$label" -v n="$runs" -v cpu="$((c1 - c0))" \
    '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2;
      printf "%s: median %.2f ms wall, %.2f ms CPU (user+sys), %d runs\n", label, m / 1000, cpu / n, n}'
}

"$berth" --root "$root" volume ls >/dev/null  # creates state.db and the tables
fs=$(df --output=fstype "$root" | tail -1 | tr -d ' ')
measure "volume create (root on $fs)" "$creates" "$berth" --root "$root" volume create "bench%d"
measure "process floor (berth --version)" "$creates" "$berth" --version
"$berth" --root "$root" volume rm $(seq -f 'bench%g' 1 "$creates") >/dev/null

if [ "$via_cli" = 1 ] || ! command -v sqlite3 >/dev/null; then
  how="berth volume create in 4 parallel loops"
  for w in 0 1 2 3; do
    ( for i in $(seq "$w" 4 $((count - 1))); do "$berth" --root "$root" volume create "v$i" >/dev/null; done ) &
  done
  wait
else
  how="one sqlite3 transaction of ready rows + mkdir of their directories"
  now=$(date +%s%N)
  {
    echo "BEGIN;"
    for i in $(seq 0 $((count - 1))); do
      echo "INSERT INTO volumes(name, driver, created_ns, labels, options, anonymous, state) VALUES('v$i', 'local', $now, '{}', '{}', 0, 'ready');"
    done
    echo "COMMIT;"
  } | sqlite3 "$root/state.db"
  (cd "$root/volumes" && seq -f 'v%g/_data' 0 $((count - 1)) | xargs mkdir -p)
fi
n=$("$berth" --root "$root" volume ls -q | wc -l)
[ "$n" = "$count" ] || { echo "expected $count volumes, ls shows $n" >&2; exit 1; }
measure "volume ls with $count volumes" "$ls_runs" "$berth" --root "$root" volume ls
measure "volume ls -q with $count volumes" "$ls_runs" "$berth" --root "$root" volume ls -q
measure "volume ls --format {{.Name}} with $count volumes" "$ls_runs" "$berth" --root "$root" volume ls --format "{{.Name}}"
echo "(the $count volumes were made by: $how)"
