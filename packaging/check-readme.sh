#!/usr/bin/env bash
# Runs the README's commands that can run on this machine, taken from the README itself (so
# an edit that breaks one fails here): the quick start's --demo, the simulator example, the
# backfill of the demo through promtool, and the README's `cargo deb` build line. The package,
# container, systemd and Kubernetes commands are checked by check-deb.sh, check-container.sh
# and the deployment tests. `bash packaging/check-readme.sh`
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/lib.sh
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -- "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# The first code block after a heading, as a script.
block_after() { # HEADING
  awk -v h="$1" '$0 == h { found = 1; next } found && /^```sh$/ { inside = 1; next } inside && /^```$/ { exit } inside { print }' README.md
}


echo "--> quick start: the exporter line"
demo=$(block_after "## Quick start" | grep -- '--demo' | sed 's/ *#.*$//')
[ "$demo" = "cargo run --release -- --demo" ] || { echo "quick start changed: $demo" >&2; exit 1; }
# Each command in its own process group, so stopping it stops what cargo started too.
setsid bash -c "$demo" >"$work/demo.log" 2>&1 &
pids+=(-$!)
wait_for http://127.0.0.1:18018/metrics 'dexcom_glucose_mg_per_dl{account="sam"}'
wait_for http://127.0.0.1:18018/ 'mmol/L'
kill -- "${pids[-1]}"
wait_until_free 18018
echo "ok: $demo serves the three demo accounts and the landing page"

echo "--> the simulator example, as written"
block_after "## Simulator" | grep -v '^#' >"$work/simulator.sh"
# As a reader does: the simulator first (it prints "listening on"), then the exporter.
head -n 1 "$work/simulator.sh" | sed 's/ *&$//' >"$work/simulator-1.sh"
tail -n +2 "$work/simulator.sh" >"$work/simulator-2.sh"
grep -q 'share_simulator' "$work/simulator-1.sh" && grep -q 'dexcom_exporter' "$work/simulator-2.sh"
setsid bash "$work/simulator-1.sh" >"$work/simulator.log" 2>&1 &
pids+=(-$!)
wait_for_port 18019
setsid bash "$work/simulator-2.sh" >"$work/exporter.log" 2>&1 &
pids+=(-$!)
wait_for http://127.0.0.1:18018/metrics 'dexcom_glucose_mg_per_dl{account="alice"}'
kill -- "${pids[-1]}" "${pids[-2]}"
wait_until_free 18018
echo "ok: the simulator example serves alice"

echo "--> backfill of the demo, loaded by promtool"
grep -q 'dexcom_exporter backfill --demo' README.md
cargo run --quiet --release -- backfill --demo --output "$work/demo.om" 2>/dev/null
tail -n 1 "$work/demo.om" | grep -qx '# EOF'
grep -q 'promtool tsdb create-blocks-from openmetrics dexcom.om ./blocks' README.md
promtool tsdb create-blocks-from openmetrics "$work/demo.om" "$work/blocks" >/dev/null
echo "ok: backfill --demo makes blocks promtool accepts"

echo "--> the package build line"
grep -q '^cargo build --release --locked && cargo deb --no-build --locked$' README.md
echo "ok: the README's cargo deb line is the one check-deb.sh runs"
