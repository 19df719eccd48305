#!/usr/bin/env bash
# Load test of a rumor cluster spread over several hosts, on standard tools: ssh/scp and GNU
# parallel. One node per host; keys and the signed roster are made here, copied out, the nodes
# started, rumors published from every node in turn, and each node's counters and deliveries
# gathered into one JSON file.
#
#   scripts/loadtest.sh --hosts FILE [options]   FILE: one "SSH_TARGET BIND_ADDR" per line
#   scripts/loadtest.sh --netns N    [options]   N network namespaces on this machine, joined
#                                                by veth pairs to a bridge: the same code path,
#                                                with `ip netns exec NS` in place of `ssh HOST`
# options: --suite S (ed25519)  --rumors R (20)  --port P (7946)  --out FILE  --bin DIR
#          --gossip-interval D (200ms)  --probe-interval D (1s)
#
# Every wait is bounded. On exit (also on error or Ctrl-C) nodes are stopped, their logs
# fetched, namespaces and per-host directories removed, and the run's secret keys deleted; the
# logs, stats and result (unless --out) stay in /tmp/rumor-loadtest.*. Multi-host latencies include the hosts' clock offsets: keep them NTP-synced.
set -euo pipefail

MODE= HOSTS_FILE= NETNS=0 SUITE=ed25519 RUMORS=20 PORT=7946 OUT= BIN= GOSSIP=200ms PROBE=1s
die() { echo "loadtest: $*" >&2; exit 1; }
while (($#)); do
  case $1 in
    --hosts) MODE=hosts HOSTS_FILE=${2:?--hosts needs a file}; shift 2 ;;
    --netns) MODE=netns NETNS=${2:?--netns needs a count}; shift 2 ;;
    --suite) SUITE=${2:?}; shift 2 ;;
    --rumors) RUMORS=${2:?}; shift 2 ;;
    --port) PORT=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    --bin) BIN=${2:?}; shift 2 ;;
    --gossip-interval) GOSSIP=${2:?}; shift 2 ;;
    --probe-interval) PROBE=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[[ -n $MODE ]] || die "give --hosts FILE or --netns N"
[[ $RUMORS =~ ^[0-9]+$ && $RUMORS -gt 0 ]] || die "--rumors must be a positive number"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
[[ -x $BIN/rumor ]] || (cd "$ROOT" && cargo build --release -q -p rumor) || die "cannot build rumor"
RUMOR=$BIN/rumor
if ! command -v parallel >/dev/null; then
  [[ $(id -u) == 0 ]] || die "GNU parallel is needed: apt-get install parallel"
  (apt-get update -qq && apt-get install -y -qq parallel) >/dev/null || die "cannot install GNU parallel"
fi

RUN=rl$$
WORK=$(mktemp -d "/tmp/rumor-loadtest.XXXXXX")
OUT=${OUT:-$WORK/result.json}
HOSTS=() ADDRS=()
REMOTE=/tmp/rumor-loadtest-$RUN   # per-host directory (netns: shared filesystem, one per node)

# run_on HOST CMD...: the one place where the two modes differ.
run_on() {
  local host=$1; shift
  if [[ $MODE == netns ]]; then ip netns exec "$host" "$@"; else ssh -o BatchMode=yes -o ConnectTimeout=5 "$host" "$@"; fi
}
export -f run_on; export MODE
node_dir() { if [[ $MODE == netns ]]; then echo "$REMOTE/$1"; else echo "$REMOTE"; fi; }

cleanup() {
  set +e
  for i in "${!HOSTS[@]}"; do
    run_on "${HOSTS[$i]}" pkill -TERM -f "rumor run --bind ${ADDRS[$i]}:$PORT" >/dev/null 2>&1
  done
  sleep 1
  for i in "${!HOSTS[@]}"; do
    run_on "${HOSTS[$i]}" pkill -KILL -f "rumor run --bind ${ADDRS[$i]}:$PORT" >/dev/null 2>&1
  done
  # Node logs come home; the per-host directories (binary, secret key, state) go.
  for i in "${!HOSTS[@]}"; do
    if [[ $MODE == netns ]]; then
      cp "$(node_dir "$i")/node$i.log" "$WORK/" 2>/dev/null
    else
      scp -q -o BatchMode=yes -o ConnectTimeout=5 "${HOSTS[$i]}:$REMOTE/node$i.log" "$WORK/" 2>/dev/null
      run_on "${HOSTS[$i]}" rm -rf "$REMOTE" >/dev/null 2>&1
    fi
  done
  if [[ $MODE == netns ]]; then
    for ns in "${HOSTS[@]}" "$RUN-hub"; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$REMOTE"
  fi
  # The run's secret keys go with it; the logs, stats and result stay in $WORK.
  rm -f "$WORK"/*.key
  echo "loadtest: logs and stats in $WORK" >&2
}
trap cleanup EXIT

if [[ $MODE == netns ]]; then
  ((NETNS >= 2 && NETNS <= 200)) || die "--netns must be 2..200"
  # Addresses of our own test hosts, inside namespaces this script creates and removes.
  ip netns add "$RUN-hub"
  ip -n "$RUN-hub" link add br0 type bridge
  ip -n "$RUN-hub" link set br0 up
  for ((i = 1; i <= NETNS; i++)); do
    ns=$RUN-n$i
    ip netns add "$ns"
    ip link add "${RUN}v$i" type veth peer name "${RUN}p$i"
    ip link set "${RUN}v$i" netns "$ns"
    ip link set "${RUN}p$i" netns "$RUN-hub"
    ip -n "$RUN-hub" link set "${RUN}p$i" master br0 up
    ip -n "$ns" addr add "10.213.0.$i/24" dev "${RUN}v$i"
    ip -n "$ns" link set "${RUN}v$i" up
    ip -n "$ns" link set lo up
    HOSTS+=("$ns") ADDRS+=("10.213.0.$i")
  done
else
  [[ -r $HOSTS_FILE ]] || die "cannot read hosts file $HOSTS_FILE"
  while read -r target addr _; do
    [[ -z ${target:-} || $target == \#* ]] && continue
    [[ -n ${addr:-} ]] || die "hosts file line for $target needs a bind address"
    HOSTS+=("$target") ADDRS+=("$addr")
  done <"$HOSTS_FILE"
  ((${#HOSTS[@]} >= 2)) || die "need at least 2 hosts"
fi
N=${#HOSTS[@]}
echo "loadtest: $N nodes ($MODE), suite $SUITE, $RUMORS rumors" >&2

# Keys and the signed roster, made here.
"$RUMOR" keygen authority --out "$WORK/auth.key" >/dev/null
"$RUMOR" keygen cluster --out "$WORK/cluster.key"
for i in "${!HOSTS[@]}"; do
  echo "$i $("$RUMOR" keygen member --out "$WORK/m$i.key") ${ADDRS[$i]}:$PORT" >>"$WORK/members.txt"
done
"$RUMOR" roster sign --authority-key "$WORK/auth.key" --cluster "loadtest-$RUN" --members "$WORK/members.txt" --out "$WORK/roster.toml" >/dev/null

# Copy out (scp in parallel; a namespace shares our filesystem, so a plain copy).
for i in "${!HOSTS[@]}"; do echo "$i ${HOSTS[$i]} $(node_dir "$i")"; done >"$WORK/plan"
copy_one() {
  local i=$1 host=$2 dir=$3
  if [[ $MODE == netns ]]; then
    mkdir -p "$dir" && cp "$RUMOR" "$WORK/m$i.key" "$WORK/roster.toml" "$WORK/cluster.key" "$dir/"
  else
    ssh -o BatchMode=yes "$host" mkdir -p "$dir" && scp -q "$RUMOR" "$WORK/m$i.key" "$WORK/roster.toml" "$WORK/cluster.key" "$host:$dir/"
  fi
}
export -f copy_one; export RUMOR WORK
parallel --colsep ' ' --halt now,fail=1 copy_one {1} {2} {3} <"$WORK/plan" || die "copying to the hosts failed"

# Start one node per host.
CLUSTER_KEY=()
[[ $SUITE == none || $SUITE == ed25519 ]] || CLUSTER_KEY=(--cluster-key cluster.key)
start_one() {
  local i=$1 host=$2 dir=$3
  run_on "$host" bash -c "cd '$dir' && chmod 600 m$i.key cluster.key && exec setsid ./rumor run --bind ${ADDRS_ARR[$i]}:$PORT \
    --key m$i.key --roster roster.toml --suite $SUITE ${CLUSTER_KEY_ARG} --seeds ${ADDRS_ARR[0]}:$PORT \
    --state-dir state$i --control control$i.sock --io-threads 1 --verify-threads 1 --pin false \
    --gossip-interval $GOSSIP --probe-interval $PROBE >node$i.log 2>&1 </dev/null &"
}
export -f start_one; export PORT SUITE GOSSIP PROBE
export CLUSTER_KEY_ARG="${CLUSTER_KEY[*]:-}" ADDRS_ARR_S="${ADDRS[*]}"
start_one_wrap() { local -a ADDRS_ARR; read -ra ADDRS_ARR <<<"$ADDRS_ARR_S"; start_one "$@"; }
export -f start_one_wrap
T0=$(date +%s%3N)
parallel --colsep ' ' --halt now,fail=1 start_one_wrap {1} {2} {3} <"$WORK/plan" || die "starting nodes failed"

ctl() { local i=$1; shift; run_on "${HOSTS[$i]}" "$(node_dir "$i")/rumor" "$@" --control "$(node_dir "$i")/control$i.sock"; }

# Convergence: every node sees N alive members (bounded).
deadline=$((SECONDS + 60))
until
  all=1
  for i in "${!HOSTS[@]}"; do
    alive=$(ctl "$i" members --json 2>/dev/null | python3 -c 'import json,sys; print(sum(m["state"]=="alive" for m in json.load(sys.stdin)["members"]))' 2>/dev/null || echo 0)
    ((alive == N)) || { all=0; break; }
  done
  ((all))
do
  ((SECONDS < deadline)) || die "no convergence within 60 s (node logs: $WORK after cleanup)"
  sleep 0.2
done
CONVERGED=$(date +%s%3N)
echo "loadtest: converged in $(((CONVERGED - T0)))ms" >&2

# Publish from every node in turn.
for ((r = 0; r < RUMORS; r++)); do
  ctl $((r % N)) publish "loadtest rumor $r" >/dev/null || die "publish $r failed"
  sleep 0.05
done
sleep 3

# Gather every node's stats and summarise.
for i in "${!HOSTS[@]}"; do ctl "$i" stats >"$WORK/stats$i.json" || die "stats from node $i failed"; done
python3 - "$WORK" "$N" "$RUMORS" "$SUITE" "$MODE" "$((CONVERGED - T0))" "$OUT" <<'PY'
import json, sys
work, n, rumors, suite, mode, converge_ms, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]), sys.argv[7]
stats = [json.load(open(f"{work}/stats{i}.json")) for i in range(n)]
published = {}
for i, s in enumerate(stats):
    for d in s["deliveries"]:
        if d["origin"] == i:
            published[(d["origin"], d["seq"])] = d["at_ms"]
lat, got = [], 0
for key, t0 in published.items():
    times = [d["at_ms"] for s in stats for d in s["deliveries"] if (d["origin"], d["seq"]) == key]
    got += len(times)
    if len(times) == n:
        lat.append(max(times) - t0)
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else None
total = lambda k: sum(s["counters"].get(k, 0) for s in stats)
res = {
    "mode": mode, "nodes": n, "suite": suite, "rumors": rumors, "published": len(published),
    "converge_s": converge_ms / 1000, "delivered_fraction": got / (n * max(1, len(published))),
    "rumor_latency_p50_ms": pct(0.5), "rumor_latency_p99_ms": pct(0.99),
    "datagrams_out": total("datagrams_out"), "bytes_out": total("bytes_out"),
    "drop_auth": total("drop_auth"), "drop_replay": total("drop_replay"),
    "origin_verifications": total("origin_verifications"),
}
json.dump(res, open(out, "w"), indent=2)
print(json.dumps(res))
PY
echo "loadtest: wrote $OUT" >&2
