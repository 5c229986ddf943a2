#!/bin/bash
# Bridge networking benchmarks, against the issue's targets (medians):
#
#   iperf3 (Debian's iperf3, -t SECONDS each, medians over -r RUNS rounds):
#     a. host loopback          iperf3 -c 127.0.0.1 in the bench netns       (the baseline)
#     b. host -> container IP   server in container A's netns, client to A's IP (veth + bridge)
#     c. host -> published port client to 127.0.0.1:15201 and 10.98.0.1:15201 (-p 15201:5201,
#                               nftables DNAT)                                  >= 0.95 x b
#     d. container -> container client in container B's netns to A's IP, same user bridge
#                                                                               >= 0.85 x a
#   start time (-n N runs each, interleaved):
#     berth run --rm busybox true on the default bridge                         <= 15 ms
#     (and --network none; and podman run --rm --network bridge, when podman works here)
#     berth run -d with 100 published ports / with 1 published port (rm -f untimed) <= 2x
#
#   sudo bench/net.sh [-t SECONDS] [-r RUNS] [-n N] [--only iperf,start,ports,podman]
#
# Everything happens inside a private network namespace (the script re-executes itself under
# `unshare --net` and sets lo up), so the host's interfaces, routes and nftables ruleset are never
# touched and no packet leaves the machine. berth gets a private data root (under $TMPDIR, default
# /var/tmp) and run dir (BERTH_RUN_DIR=/run/bn-XXXXXXXX); podman a private store. At the end, also
# on Ctrl-C / SIGTERM: iperf3 servers stopped, containers rm -f, network rm, podman rm -af / rmi -af,
# container netns files and anything else mounted under the work or run dir unmounted, both
# directories removed. Anything berth should have cleaned itself is listed under "cleanup:".
# Needs root, iperf3, nsenter/unshare (util-linux), ip (iproute2), ss, python3 and Debian's
# busybox-static (for tests/fixtures/make-busybox-rootfs.sh). See bench/README.md.
set -u -o pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
berth=${BERTH_BIN:-"${BERTH_BUILD_DIR:-$repo/build}/src/cli/berth"}
usage="usage: $0 [-t SECONDS] [-r RUNS] [-n N] [--only iperf,start,ports,podman]"
secs=4
rounds=3
runs=20
only=iperf,start,ports,podman
# The command line as typed (the outer process passes it to the one inside the netns).
quote() {
  local a out=""
  for a in "$@"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./,:=@%+-]+$ ]]; then out+=" $a"; else out+=" $(printf '%q' "$a")"; fi
  done
  echo "${out# }"
}
cmdline=${BERTH_BENCH_NET_CMDLINE:-$(quote "$0" "$@")}
while [ $# -gt 0 ]; do
  case "$1" in
    -t) secs=$2; shift 2 ;;
    -r) rounds=$2; shift 2 ;;
    -n) runs=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
for v in "$secs" "$rounds" "$runs"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "$usage (numbers must be positive integers)" >&2; exit 2; }
done
for s in ${only//,/ }; do
  case "$s" in iperf|start|ports|podman) ;; *) echo "$usage (unknown section: $s)" >&2; exit 2 ;; esac
done
want() { [[ ",$only," == *",$1,"* ]]; }

die() { echo "net.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (namespaces, bridges, nftables)"
[ -x "$berth" ] || die "berth not found: $berth (build it or set BERTH_BIN)"
for tool in unshare nsenter ip ss python3 timeout; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
# The interpreter itself, not a version manager's shim (pyenv's costs 100s of ms a call).
py=$(python3 -c 'import sys; print(sys.executable)') || die "python3 does not run"
if want iperf; then
  command -v iperf3 >/dev/null || die "iperf3 not found (apt-get install iperf3), or leave it out: --only start,ports,podman"
fi

# ---- 0. a private network namespace --------------------------------------------------------
if [ "${BERTH_BENCH_NET_INNER:-}" != 1 ]; then
  export BERTH_BENCH_NET_INNER=1 BERTH_BENCH_NET_CMDLINE="$cmdline"
  exec unshare --net -- bash "$0" -t "$secs" -r "$rounds" -n "$runs" --only "$only"
fi
ip link set lo up || die "ip link set lo up failed"
# A non-loopback local address for the published-port test (c): on a dummy interface, or, on
# kernels without the dummy driver, on one end of a veth pair (the address is local either way).
addr_if=bn-dummy0
if ! ip link add bn-dummy0 type dummy 2>/dev/null; then
  addr_if=bn-veth0
  ip link add bn-veth0 type veth peer name bn-veth1 && ip link set bn-veth1 up ||
    die "could not add a dummy interface or a veth pair for 10.98.0.1/24"
fi
ip addr add 10.98.0.1/24 dev $addr_if && ip link set $addr_if up || die "could not add 10.98.0.1/24 to $addr_if"

work="" run_dir="" root=""
b() { "$berth" --root "$root" "$@"; }
podman_cmd=()
cleanup_notes=()

fg_pid=""         # a long command run by bgwait
# Runs a command in the background and waits for it: a trapped signal interrupts `wait` at once,
# where bash would run the trap only after a foreground child exits (and `timeout` puts its
# command in a process group of its own, which Ctrl-C does not reach).
bgwait() {
  local rc
  "$@" &
  fg_pid=$!
  wait "$fg_pid"
  rc=$?
  fg_pid=""
  return $rc
}

cleanup() {
  local rc=$? f pid ids m
  trap '' INT TERM HUP
  [ -n "$fg_pid" ] && kill "$fg_pid" 2>/dev/null && wait "$fg_pid" 2>/dev/null
  [ -n "$work" ] || exit "$rc"
  for f in "$work"/*.pid; do   # iperf3 servers (daemons)
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null
  done
  if [ -d "$root" ]; then
    ids=$(b ps -aq --no-trunc 2>/dev/null)
    # shellcheck disable=SC2086
    [ -n "$ids" ] && { b rm -f $ids >/dev/null 2>&1 || cleanup_notes+=("rm -f of containers failed"); }
    b network rm bench >/dev/null 2>&1
  fi
  if [ ${#podman_cmd[@]} -gt 0 ]; then
    timeout 120 "${podman_cmd[@]}" rm -af >/dev/null 2>&1
    timeout 120 "${podman_cmd[@]}" rmi -af >/dev/null 2>&1
  fi
  # berth-shims still running for our root or run dir (a berth bug if any).
  for pid in $(pgrep -f berth-shim 2>/dev/null); do
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -e "$root" -e "$run_dir"; then
      cleanup_notes+=("killed a berth-shim left running (pid $pid)")
      kill -9 "$pid" 2>/dev/null
    fi
  done
  # Container netns files ($BERTH_RUN_DIR/netns/<id>) and anything else mounted under our dirs,
  # deepest first. berth's rm -f should have unmounted its netns files: note it if not.
  for m in $(awk '{print $5}' /proc/self/mountinfo | grep -F -e "$work/" -e "${run_dir:-$work}/" | sort -r); do
    case "$m" in
      "$run_dir"/netns) ;;   # berth's shared bind mount of the netns directory itself
      "$run_dir"/netns/*) cleanup_notes+=("unmounted container netns $m") ;;
      "$run_dir"/podman*|"$work"/podman*) ;;
      *) cleanup_notes+=("unmounted $m") ;;
    esac
    umount -l "$m" 2>/dev/null
  done
  for d in "$run_dir" "$work"; do
    [ -n "$d" ] || continue
    rm -rf --one-file-system "$d" 2>/dev/null
    [ -e "$d" ] && cleanup_notes+=("could not remove $d")
  done
  if [ ${#cleanup_notes[@]} -gt 0 ]; then
    echo "cleanup:"
    printf '  %s\n' "${cleanup_notes[@]}"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
work=$(mktemp -d "${TMPDIR:-/var/tmp}/berth-bench-net.XXXXXX") || die "mktemp failed"
run_dir=$(mktemp -d /run/bn-XXXXXXXX) || die "mktemp failed"   # short: shim socket paths
root=$work/root
export BERTH_RUN_DIR=$run_dir

echo "berth-bench-net: $(uname -r), $(nproc) cpus, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "berth: $berth ($("$berth" --version 2>&1 | head -1)); root $root, BERTH_RUN_DIR=$run_dir"
echo "private netns: lo 127.0.0.1, $addr_if 10.98.0.1/24; iperf3 -t $secs x $rounds rounds; start times x $runs"

# ---- the image ---------------------------------------------------------------------------
sh "$repo/tests/fixtures/make-busybox-rootfs.sh" "$work/rootfs" >/dev/null || die "make-busybox-rootfs.sh failed"
tar --numeric-owner -C "$work/rootfs" -cf "$work/busybox.tar" . || die "tar failed"
b import --change 'CMD ["sh"]' "$work/busybox.tar" busybox:latest >/dev/null || die "berth import failed"

# ---- helpers -----------------------------------------------------------------------------
samples=$work/samples
mkdir -p "$samples"
# Children's CPU (user + sys) so far in µs, from bash's `times` written to a file by this shell.
children_cpu_us() {
  tail -1 "$1" | tr 'ms' '  ' | awk '{printf "%d", ($1 * 60 + $2 + $3 * 60 + $4) * 1000000}'
}
# Wall time of one command in µs ($EPOCHREALTIME: no fork for the clock) and the CPU time of the
# processes it waited for, appended to $samples/KEY as "WALL CPU"; stdout goes to $work/out,
# stderr to $work/err. Returns the command's status.
timed() {
  local key=$1 t0 t1 rc
  shift
  times >"$work/times0"
  t0=$EPOCHREALTIME
  "$@" >"$work/out" 2>"$work/err"
  rc=$?
  t1=$EPOCHREALTIME
  times >"$work/times1"
  [ $rc = 0 ] && echo "$((${t1/./} - ${t0/./})) $(($(children_cpu_us "$work/times1") - $(children_cpu_us "$work/times0")))" \
    >>"$samples/$key"
  return $rc
}
lasterr() { tr '\n' ' ' <"$work/err" | cut -c1-300; }
skip() { echo "$2" >"$samples/$1.skipped"; echo "  skipped $1: $2" >&2; }
cid() { b inspect -f '{{.Id}}' "$1"; }
cip() { b inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }

# iperf3 server as a daemon in the netns of $1 ("" = the bench netns) on port $2, pid file $3;
# waits until it listens.
iperf_server() {
  local ns=$1 port=$2 pidf=$3 i pre=()
  [ -n "$ns" ] && pre=(nsenter --net="$ns")
  "${pre[@]}" iperf3 -s -D -p "$port" -I "$pidf" >/dev/null 2>"$work/err" || return 1
  for i in $(seq 50); do
    "${pre[@]}" ss -Hltn "sport = :$port" | grep -q . && return 0
    sleep 0.1
  done
  echo "iperf3 -s -p $port is not listening after 5 s" >"$work/err"
  return 1
}

# One iperf3 run: KEY NETNS("" = bench) HOST PORT. Appends bits/s to $samples/KEY.
iperf_client() {
  local key=$1 ns=$2 host=$3 port=$4 pre=() bps
  [ -n "$ns" ] && pre=(nsenter --net="$ns")
  if ! bgwait timeout $((secs + 20)) "${pre[@]}" iperf3 -c "$host" -p "$port" -t "$secs" -J \
      --connect-timeout 3000 >"$work/iperf.json" 2>"$work/err"; then
    "$py" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("error",""))' \
      "$work/iperf.json" >>"$work/err" 2>/dev/null
    echo "$key: iperf3 -c $host -p $port failed: $(lasterr)" >&2
    return 1
  fi
  bps=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"])' \
    "$work/iperf.json") || { echo "$key: no sum_received in iperf3's JSON" >&2; return 1; }
  echo "$bps" >>"$samples/$key"
}

# ---- 1. iperf3 -----------------------------------------------------------------------------
if want iperf; then
  echo "iperf3: setting up (network bench, containers A with -p 15201:5201 and B)" >&2
  ok=1
  b network create bench >/dev/null 2>"$work/err" || { skip iperf "berth network create bench: $(lasterr)"; ok=0; }
  if [ $ok = 1 ]; then
    b run -d --name bn-a --network bench -p 15201:5201 busybox sleep 1000 >/dev/null 2>"$work/err" &&
      b run -d --name bn-b --network bench busybox sleep 1000 >/dev/null 2>"$work/err" ||
      { skip iperf "berth run -d --network bench [-p 15201:5201] busybox sleep 1000: $(lasterr)"; ok=0; }
  fi
  if [ $ok = 1 ]; then
    a_id=$(cid bn-a) b_id=$(cid bn-b) a_ip=$(cip bn-a)
    a_ns=$run_dir/netns/$a_id b_ns=$run_dir/netns/$b_id
    for f in "$a_ns" "$b_ns"; do [ -e "$f" ] || { skip iperf "no netns file $f"; ok=0; }; done
    [ -n "$a_ip" ] || { skip iperf "container A has no IPAddress in berth inspect"; ok=0; }
  fi
  if [ $ok = 1 ]; then
    iperf_server "" 5201 "$work/srv-host.pid" || { skip iperf "iperf3 -s in the bench netns: $(lasterr)"; ok=0; }
  fi
  if [ $ok = 1 ]; then
    iperf_server "$a_ns" 5201 "$work/srv-a.pid" || { skip iperf "iperf3 -s in container A's netns: $(lasterr)"; ok=0; }
  fi
  if [ $ok = 1 ]; then
    echo "  A = $a_ip (bridge $(b network inspect -f '{{.Id}}' bench 2>/dev/null | cut -c1-12)), B = $(cip bn-b)" >&2
    # key|netns|host|port, in rotated order each round
    tests=("a|-|127.0.0.1|5201" "b|-|$a_ip|5201" "c_lo|-|127.0.0.1|15201" "c_dummy|-|10.98.0.1|15201" "d|$b_ns|$a_ip|5201")
    # A short probe of each path first; a failing one is reported (not timed again).
    dead=""
    for t in "${tests[@]}"; do
      IFS='|' read -r key ns host port <<<"$t"
      [ "$ns" = - ] && ns=""
      pre=(); [ -n "$ns" ] && pre=(nsenter --net="$ns")
      if ! bgwait timeout 15 "${pre[@]}" iperf3 -c "$host" -p "$port" -t 1 --connect-timeout 3000 >/dev/null 2>"$work/err"; then
        where=bench; [ -n "$ns" ] && where="B's"
        skip "$key" "probe failed: nsenter ($where netns) iperf3 -c $host -p $port -t 1: $(lasterr)"
        dead="$dead $key"
      fi
    done
    for r in $(seq 0 $((rounds - 1))); do
      n=${#tests[@]} k=$((r % ${#tests[@]}))
      for i in $(seq 0 $((n - 1))); do
        IFS='|' read -r key ns host port <<<"${tests[$(((i + k) % n))]}"
        [[ " $dead " == *" $key "* ]] && continue
        [ "$ns" = - ] && ns=""
        echo "  round $((r + 1))/$rounds: $key ($host:$port)" >&2
        iperf_client "$key" "$ns" "$host" "$port"
      done
    done
  fi
  for f in "$work"/srv-*.pid; do [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null; rm -f "$f"; done
  b rm -f bn-a bn-b >/dev/null 2>&1
  b network rm bench >/dev/null 2>&1
fi

# ---- 3. podman (set up before the start times, which it joins) -----------------------------
podman_run=()
if want podman; then
  if ! command -v podman >/dev/null; then
    skip podman "podman not installed"
  else
    echo "podman: importing the image into a private store" >&2
    podman_cmd=(podman --root "$work/podman/root" --runroot "$run_dir/podman" --tmpdir "$run_dir/podman-tmp")
    if ! bgwait timeout 300 "${podman_cmd[@]}" import --change 'CMD ["sh"]' "$work/busybox.tar" localhost/bbbench \
        >/dev/null 2>"$work/err"; then
      skip podman "podman import failed: $(lasterr)"
    else
      rts=(); command -v runc >/dev/null && rts+=(runc)
      rts+=(default)
      tried=""
      for rt in "${rts[@]}"; do
        for ul in 0 1; do
          args=("${podman_cmd[@]}")
          [ "$rt" = runc ] && args+=(--runtime runc)
          args+=(run --rm --network bridge --pull never)
          [ $ul = 1 ] && args+=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
          args+=(localhost/bbbench true)
          if bgwait timeout 120 "${args[@]}" >/dev/null 2>"$work/err"; then
            podman_run=("${args[@]}")
            unset 'args[${#args[@]}-1]'   # the same, showing the container's address
            addr=$(timeout 120 "${args[@]}" ip -4 -o addr show eth0 2>/dev/null | awk '{print $4}')
            podman_note="$(podman --version | sed 's/ version / /'), runtime $rt, private store, eth0 ${addr:-?}"
            [ $ul = 1 ] && podman_note="$podman_note, --ulimit (this host refuses podman's default rlimits)"
            break 2
          fi
          tried="$tried | runtime $rt$([ $ul = 1 ] && echo ' +ulimit'): $(lasterr)"
        done
      done
      if [ ${#podman_run[@]} = 0 ]; then
        skip podman "podman run --rm --network bridge fails in the private netns (not pulling anything):$tried"
      fi
    fi
  fi
fi

# ---- 2. start time ---------------------------------------------------------------------------
if want start; then
  echo "start: berth run --rm busybox true, bridge vs none${podman_run:+ vs podman}, $runs runs" >&2
  contenders=()
  for c in bridge none podman; do
    case $c in
      bridge) cmd=(b run --rm busybox true) ;;
      none) cmd=(b run --rm --network none busybox true) ;;
      podman) [ ${#podman_run[@]} -gt 0 ] || continue; cmd=("${podman_run[@]}") ;;
    esac
    # warm-up / probe, untimed
    if "${cmd[@]}" >/dev/null 2>"$work/err"; then contenders+=("$c")
      [ $c = bridge ] && echo "  default bridge: eth0 $(b run --rm busybox ip -4 -o addr show eth0 2>/dev/null | awk '{print $4}')" >&2
    else skip "run_$c" "${cmd[*]}: $(lasterr)"; fi
  done
  for r in $(seq 0 $((runs - 1))); do
    n=${#contenders[@]}
    for i in $(seq 0 $((n - 1))); do
      c=${contenders[$(((i + r) % n))]}
      case $c in
        bridge) timed run_bridge b run --rm busybox true ;;
        none) timed run_none b run --rm --network none busybox true ;;
        podman) timed run_podman "${podman_run[@]}" ;;
      esac || echo "run_$c failed (run $((r + 1))): $(lasterr)" >&2
    done
  done
fi

if want ports; then
  echo "ports: berth run -d with 1 vs 100 published ports, $runs runs each (rm -f untimed)" >&2
  p100=(); for p in $(seq 20000 20099); do p100+=(-p "$p:$p"); done
  for c in 1 100; do
    if [ $c = 1 ]; then ports=(-p 20000:20000); else ports=("${p100[@]}"); fi
    if b run -d "${ports[@]}" busybox sleep 1000 >"$work/out" 2>"$work/err"; then
      id=$(cat "$work/out")
      got=$(b port "$id" 2>/dev/null | grep -c .)
      [ "$got" = $c ] || echo "ports_$c: berth port shows $got mapping(s), expected $c" >&2
      b rm -f "$id" >/dev/null 2>&1
    else
      skip "ports_$c" "berth run -d ${ports[*]:0:4}${ports[4]:+ …} busybox sleep 1000: $(lasterr)"
    fi
  done
  for r in $(seq 0 $((runs - 1))); do
    for c in $( ((r % 2)) && echo "100 1" || echo "1 100"); do
      [ -e "$samples/ports_$c.skipped" ] && continue
      if [ $c = 1 ]; then ports=(-p 20000:20000); else ports=("${p100[@]}"); fi
      if timed "ports_$c" b run -d "${ports[@]}" busybox sleep 1000; then
        b rm -f "$(cat "$work/out")" >/dev/null 2>&1 || echo "ports_$c: rm -f failed" >&2
      else
        echo "ports_$c failed (run $((r + 1))): $(lasterr)" >&2
      fi
    done
  done
fi

# ---- report ----------------------------------------------------------------------------------
"$py" - "$samples" "$secs" "${podman_note:-}" "$cmdline" <<'PY'
import math, os, statistics, sys
d, secs, podman_note, cmdline = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]

def load(key, col=0):
    p = os.path.join(d, key)
    if not os.path.exists(p):
        return []
    return [float(l.split()[col]) for l in open(p) if l.strip()]

def skipped(key):
    p = os.path.join(d, key + ".skipped")
    return open(p).read().strip() if os.path.exists(p) else None

def med(xs):
    return statistics.median(xs) if xs else None

rows, summary, notes = [], [], []

def ratio(a, b):
    return a / b if a is not None and b else None

def verdict(r, target, ge):
    if r is None:
        return "-"
    return "met" if (r >= target if ge else r <= target) else "NOT MET"

iperf_keys = [
    ("a", "a. host loopback 127.0.0.1:5201"),
    ("b", "b. host -> container IP (veth + bridge)"),
    ("c_lo", "c. host -> 127.0.0.1:15201 (published)"),
    ("c_dummy", "c. host -> 10.98.0.1:15201 (published)"),
    ("d", "d. container B -> container A (user bridge)"),
]
gb = {k: [x / 1e9 for x in load(k)] for k, _ in iperf_keys}
m = {k: med(v) for k, v in gb.items()}
if any(gb.values()) or any(skipped(k) for k, _ in iperf_keys) or skipped("iperf"):
    print()
    print(f"iperf3 throughput (Gbit/s, sum_received, -t {secs}; ratio column: c / b, d / a)")
    hdr = ["path", "n", "median", "min", "max", "ratio", "target", ""]
    tr = []
    for k, label in iperf_keys:
        xs = gb[k]
        if not xs:
            tr.append([label, "0", "-", "-", "-", "-", "", "skipped"])
            continue
        r, tgt, v = None, "", ""
        if k.startswith("c"):
            r = ratio(m[k], m["b"]); tgt = ">= 0.95x b"; v = verdict(r, 0.95, True)
            summary.append([f"published port ({'127.0.0.1' if k == 'c_lo' else '10.98.0.1'}) / container IP",
                            f"{r:.2f}x" if r else "-", ">= 0.95x", v])
        elif k == "d":
            r = ratio(m[k], m["a"]); tgt = ">= 0.85x a"; v = verdict(r, 0.85, True)
            summary.append(["container <-> container / host loopback", f"{r:.2f}x" if r else "-", ">= 0.85x", v])
        tr.append([label, str(len(xs)), f"{m[k]:.2f}", f"{min(xs):.2f}", f"{max(xs):.2f}",
                   f"{r:.2f}x" if r else "", tgt, v])
    rows.append((hdr, tr))

def table(hdr, tr):
    w = [max(len(str(r[i])) for r in [hdr] + tr) for i in range(len(hdr))]
    line = lambda r: "  ".join((str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i])) for i, c in enumerate(r)).rstrip()
    print(line(hdr)); print("  ".join("-" * x for x in w).rstrip())
    for r in tr: print(line(r))

if rows:
    table(*rows[-1])

st_keys = [("run_bridge", "berth run --rm busybox true (default bridge)"),
           ("run_none", "berth run --rm --network none busybox true"),
           ("run_podman", "podman run --rm --network bridge IMG true"),
           ("ports_1", "berth run -d -p 20000:20000 busybox sleep 1000"),
           ("ports_100", "berth run -d -p 20000:20000 … -p 20099:20099 (100)")]
ms = {k: [x / 1000 for x in load(k)] for k, _ in st_keys}
mm = {k: med(v) for k, v in ms.items()}
if any(ms.values()) or any(skipped(k) for k, _ in st_keys):
    print()
    print("start time (ms, wall; cpu: mean user+sys of the command and the children it waited for;")
    print("ratio column: / berth default bridge, 100 ports / 1 port)")
    hdr = ["command", "n", "median", "min", "max", "cpu", "ratio", "target", ""]
    tr = []
    for k, label in st_keys:
        xs = ms[k]
        if not xs:
            if skipped(k):
                tr.append([label, "0", "-", "-", "-", "-", "-", "", "skipped"])
            continue
        r, tgt, v = None, "", ""
        if k == "run_bridge":
            tgt, v = "<= 15 ms", verdict(mm[k], 15, False)
            summary.append(["run --rm true, default bridge", f"{mm[k]:.2f} ms", "<= 15 ms", v])
        elif k in ("run_none", "run_podman"):
            r = ratio(mm[k], mm["run_bridge"])
            if k == "run_podman" and r:
                summary.append(["podman run --rm --network bridge / berth", f"{r:.2f}x", "", ""])
        elif k == "ports_100":
            r = ratio(mm[k], mm["ports_1"]); tgt = "<= 2x"; v = verdict(r, 2, False)
            summary.append(["run -d, 100 published ports / 1", f"{r:.2f}x" if r else "-", "<= 2x", v])
        cpu = statistics.mean(load(k, 1)) / 1000
        tr.append([label, str(len(xs)), f"{mm[k]:.2f}", f"{min(xs):.2f}", f"{max(xs):.2f}",
                   f"{cpu:.1f}", f"{r:.2f}x" if r else "", tgt, v])
    table(hdr, tr)

skips = sorted(f[:-8] for f in os.listdir(d) if f.endswith(".skipped"))
if skips or podman_note:
    print()
    if podman_note:
        print(f"podman: {podman_note}")
    for k in skips:
        print(f"skipped {k}: {skipped(k)}")
if summary:
    print()
    table(["goal", "value", "target", ""], summary)
print()
print(f"loadavg at the end: {' '.join(open('/proc/loadavg').read().split()[:3])}")
print(f"command: {cmdline}")
PY
