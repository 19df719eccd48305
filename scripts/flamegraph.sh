#!/usr/bin/env bash
# Flamegraph of a rumor node under ingest load: runs `rumor-bench ingest` (the node runs
# in-process on loopback, fed by a live load generator) under `perf record`, keeps the node's
# own threads (io-*, verify-*, core; not the generator), and renders an SVG with inferno.
#
#   scripts/flamegraph.sh SUITE [OUT.svg] [SECONDS]       e.g. scripts/flamegraph.sh ed25519
#
# Uses the `cycles` event where the CPU exposes it and falls back to `cpu-clock` (VMs often
# have no hardware counters). Needs perf (Debian: linux-perf) and inferno (cargo install inferno).
set -euo pipefail
SUITE=${1:?usage: flamegraph.sh SUITE [OUT.svg] [SECONDS]}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${2:-$ROOT/flamegraphs/ingest-$SUITE.svg}
SECS=${3:-5}
die() { echo "flamegraph: $*" >&2; exit 1; }
command -v perf >/dev/null || die "perf is needed (apt-get install linux-perf)"
command -v inferno-collapse-perf >/dev/null || die "inferno is needed (cargo install inferno)"
(cd "$ROOT" && cargo build --release -q -p rumor-bench) || die "build failed"
EVENT=cycles
if ! perf stat -e cycles true >/dev/null 2>&1 || perf stat -e cycles true 2>&1 | grep -q "not supported"; then
  EVENT=cpu-clock
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# DWARF unwinding: release builds have no frame pointers, and frame-pointer stacks then
# invent parents (a libc frame "calling" unrelated Rust code).
perf record -e "$EVENT" -F 499 --call-graph dwarf,16384 -o "$WORK/perf.data" -- \
  "$ROOT/target/release/rumor-bench" ingest --mode live --io uring --suite "$SUITE" --verify-threads 1 --seconds "$SECS" \
  --json "$WORK/ingest.json" >/dev/null 2>"$WORK/bench.err" || die "ingest run failed: $(tail -1 "$WORK/bench.err")"
COMMS=$(perf report -i "$WORK/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null |
  awk '/%/ {print $2}' | grep -E '^(io-[0-9]+|verify-[0-9]+|core)$' | paste -sd, -)
[[ -n $COMMS ]] || die "no samples from the node's threads (io-*, verify-*, core)"
perf script -i "$WORK/perf.data" --comms "$COMMS" 2>/dev/null | inferno-collapse-perf >"$WORK/folded"
[[ -s $WORK/folded ]] || die "no samples from the node's threads"
mkdir -p "$(dirname "$OUT")"
inferno-flamegraph --title "rumor ingest, suite $SUITE, io_uring, 1 verify thread, $SECS s ($EVENT)" <"$WORK/folded" >"$OUT"
echo "flamegraph: wrote $OUT ($EVENT, $(wc -l <"$WORK/folded") stacks)" >&2
