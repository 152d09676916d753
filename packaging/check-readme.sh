#!/usr/bin/env bash
# Runs the commands of README.md and docs/ that can run on this machine, taken from the pages
# themselves (so an edit that breaks one fails here), with only the paths a root install uses
# pointed at a scratch directory: the quick start's --demo, the simulator example, `check`
# against the simulator for a right and a wrong password, the night-alarm path's config checks
# and its test alert delivered through Debian's Alertmanager with the shipped file, the
# backfill of the demo through promtool, the history endpoint, and the `cargo deb` build line.
# Root-only steps (apt install, systemctl) are checked by check-deb.sh, the container by
# check-container.sh, systemd and Kubernetes by the deployment tests. It also checks the pages
# themselves: the README's length, every docs page linked from it, and no broken link.
# The pages' commands keep their ports as written (18018, 18019, 9093), so the script runs in a
# network namespace of its own (only loopback): there those ports are free whatever this
# machine runs, and the test alert cannot reach this machine's own Alertmanager, which would
# ring a real phone. Everything else it binds is a free port. As root it runs in a throwaway
# root (packaging/throwaway-root.sh), which has that network namespace and more: a command
# typed without --storage.path finds the package's /var/lib/dexcom_exporter when the machine
# has one, and there it writes to a copy that vanishes, never to the service's login gate.
# `bash packaging/check-readme.sh`
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/lib.sh
if [ "${DEXCOM_README_NETNS:-}" != 1 ]; then
  # There is no network in there: fetch the crates out here.
  cargo fetch --locked --quiet
  if [ "$(id -u)" -eq 0 ]; then
    exec env DEXCOM_README_NETNS=1 bash packaging/throwaway-root.sh bash "$0"
  fi
  exec env DEXCOM_README_NETNS=1 unshare --user --map-root-user --net -- \
    bash -c 'ip link set lo up && exec bash "$0"' "$0"
fi
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -- "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# The first code block of LANG (sh, console) after a heading in FILE, as a script.
block_after() { # FILE HEADING [LANG]
  awk -v h="$2" -v lang="${3:-sh}" '$0 == h { found = 1; next } found && $0 == "```" lang { inside = 1; next } inside && /^```$/ { exit } inside { print }' "$1"
}
# The block's lines joined where they end in a backslash.
joined() { sed -e ':a' -e '/\\$/N; s/\\\n//; ta'; }
# A root install's paths pointed at the scratch directory.
scratch_paths() {
  sed -e 's/sudo //g' -e "s|/etc/default/dexcom_exporter|$work/default|g" \
    -e "s|/etc/dexcom_exporter/password|$work/password|g" \
    -e "s|/var/lib/dexcom_exporter|$work/state|g" \
    -e "s|/etc/prometheus/alertmanager.yml|$work/alertmanager.yml|g" \
    -e "s|/etc/prometheus/prometheus.yml|$work/prometheus/prometheus.yml|g"
}

echo "--> the pages: README at most 250 lines, every docs page linked, no broken link, every file a table names exists"
lines=$(wc -l <README.md)
[ "$lines" -le 250 ] || { echo "README.md has $lines lines (at most 250)" >&2; exit 1; }
for page in docs/*.md; do
  grep -q "](${page})\|](${page}#" README.md || { echo "$page is not linked from README.md" >&2; exit 1; }
done
python3 - <<'EOF'
import pathlib, re, sys
bad = []
def anchors(path):
    text = path.read_text()
    out = set()
    for line in text.splitlines():
        if line.startswith('#'):
            title = line.lstrip('#').strip().lower()
            slug = re.sub(r'[^\w\- ]', '', title).replace(' ', '-')
            out.add(slug)
    return out
for page in [pathlib.Path('README.md'), *sorted(pathlib.Path('docs').glob('*.md'))]:
    text = re.sub(r'```.*?```', '', page.read_text(), flags=re.S)
    for target in re.findall(r'\]\(([^)\s]+)\)', text):
        if re.match(r'[a-z]+:', target):
            continue
        path, _, anchor = target.partition('#')
        resolved = (page.parent / path).resolve() if path else page.resolve()
        if not resolved.exists():
            bad.append(f'{page}: {target} (no such file)')
        elif anchor and resolved.suffix == '.md' and anchor not in anchors(resolved):
            bad.append(f'{page}: {target} (no such heading)')
    # Pages name files in backticks (the design map, "the gate (`src/share/gate/mod.rs`)"); a
    # moved file must not leave its old name behind, in a table or in the prose.
    for named in re.findall(r'`((?:src|tests|benches|testkit|deploy|packaging|debian|grafana|docs)/[^`*\s]*)`', text):
        if not pathlib.Path(named).exists():
            bad.append(f'{page}: `{named}` (no such file or directory)')
# The shipped files' comments send readers to a section of a page (`docs/alerting.md, "Alerts
# that reach a phone"`): the page must hold that heading.
for shipped in sorted(pathlib.Path('deploy').rglob('*')):
    if not shipped.is_file():
        continue
    for page, section in re.findall(r'(docs/[\w-]+\.md|README(?:\.md)?), "([^"]+)"', shipped.read_text()):
        page = 'README.md' if page == 'README' else page
        headings = [line.lstrip('#').strip() for line in pathlib.Path(page).read_text().splitlines() if line.startswith('#')]
        if section not in headings:
            bad.append(f'{shipped}: {page} has no section "{section}"')
if bad:
    print('broken links:\n  ' + '\n  '.join(bad), file=sys.stderr)
    sys.exit(1)
EOF
# Blocks fenced `sh` are the ones this script runs; `console` blocks need root or a real account
# (check-deb.sh, check-container.sh and the deployment tests cover those). A new `sh` block
# must be run here, or fenced `console`.
known='cargo run --release -- --demo|amtool alert add DexcomGlucoseUrgentLow|# while the service runs: its history|cargo run --release --bin share_simulator'
for page in README.md docs/*.md; do
  awk '/^```sh$/ { getline; print }' "$page" | while IFS= read -r first; do
    grep -qE "^($known)" <<<"$first" || { echo "$page: a runnable block this script does not run: $first" >&2; exit 1; }
  done
done
echo "ok: README.md has $lines lines, $(ls docs/*.md | wc -l) docs pages linked, no broken link, every sh block known"

echo "--> quick start: the exporter line"
demo=$(block_after README.md "## Quick start" | grep -- '--demo' | sed 's/ *#.*$//')
[ "$demo" = "cargo run --release -- --demo" ] || { echo "quick start changed: $demo" >&2; exit 1; }
# Each command in its own process group, so stopping it stops what cargo started too.
setsid bash -c "$demo" >"$work/demo.log" 2>&1 &
pids+=(-$!)
wait_for http://127.0.0.1:18018/metrics 'dexcom_glucose_mg_per_dl{account="sam"}'
wait_for http://127.0.0.1:18018/ 'mmol/L'
wait_for http://127.0.0.1:18018/ '<strong>Simulated</strong>'
echo "--> the running exporter's history, as docs/remote-write.md fetches it"
history=$(grep -h '^curl -s -o dexcom.om http://127.0.0.1:18018/api/v1/history$' docs/remote-write.md)
(cd "$work" && bash -c "$history")
grep -q '^dexcom_reading_glucose_mg_per_dl{account="sam"' "$work/dexcom.om"
tail -n 1 "$work/dexcom.om" | grep -qx '# EOF'
kill -- "${pids[-1]}"
wait_until_free 18018
echo "ok: $demo serves the three demo accounts, the landing page and its history"

echo "--> the simulator example (docs/simulator.md), as written"
block_after docs/simulator.md "# Simulator" | grep -v '^#' >"$work/simulator.sh"
# As a reader does: the simulator first (it prints "listening on"), then the exporter.
head -n 1 "$work/simulator.sh" | sed 's/ *&$//' >"$work/simulator-1.sh"
tail -n +2 "$work/simulator.sh" >"$work/simulator-2.sh"
grep -q 'share_simulator' "$work/simulator-1.sh" && grep -q 'dexcom_exporter' "$work/simulator-2.sh"
grep -q -- '--release' "$work/simulator-1.sh" && grep -q -- '--release' "$work/simulator-2.sh" \
  || { echo "the simulator example must build the release profile the quick start built" >&2; exit 1; }
setsid bash "$work/simulator-1.sh" >"$work/simulator.log" 2>&1 &
simulator=-$!
pids+=("$simulator")
wait_for_port 18019
setsid bash "$work/simulator-2.sh" >"$work/exporter.log" 2>&1 &
exporter=-$!
pids+=("$exporter")
wait_for http://127.0.0.1:18018/metrics 'dexcom_glucose_mg_per_dl{account="alice"}'
kill -- "$exporter"
wait_until_free 18018
echo "ok: the simulator example serves alice"

echo "--> 'Check it' (README), the simulator standing in for Share"
cargo build --quiet --release --locked --bin dexcom_exporter
export PATH="$PWD/target/release:$PATH"
# /etc/default/dexcom_exporter as the package installs it, edited as the README says (the
# username), and pointed at the simulator standing in for Share.
sed -e 's/^DEXCOM_USERNAME=.*/DEXCOM_USERNAME=alice/' deploy/dexcom_exporter.env.example >"$work/default"
printf 'DEXCOM_BASE_URL=http://127.0.0.1:18019/ShareWebServices/Services/\n' >>"$work/default"
check=$(block_after README.md "## Check it" console | joined | grep 'dexcom_exporter check' | scratch_paths)
grep -q 'set -a; \. ' <<<"$check" || { echo "the check command changed: $check" >&2; exit 1; }
(umask 077; printf 'wrong\n' >"$work/password")
if out=$(bash -c "$check"); then echo "check passed with a wrong password: $out" >&2; exit 1; fi
grep -q '^FAIL  alice: Dexcom Share rejected the login' <<<"$out" && grep -q '1. the region' <<<"$out" \
  || { echo "check did not explain the wrong password: $out" >&2; exit 1; }
out=$(bash -c "$check" || true)
grep -q 'holds the password until' <<<"$out" || { echo "the held password was not reported: $out" >&2; exit 1; }
(umask 077; printf 'secret\n' >"$work/password")
out=$(bash -c "$check") || { echo "check failed with the right password: $out" >&2; exit 1; }
grep -q '^ok    alice: [0-9]* mg/dL' <<<"$out" || { echo "unexpected: $out" >&2; exit 1; }
echo "ok: check explained a wrong password, held it back, then said: $out"
kill -- "$simulator"
wait_until_free 18019

echo "--> the night alarm (README): the shipped files checked, a test alert delivered"
night=$(block_after README.md "## The night alarm: one machine or a Raspberry Pi" console | joined)
mkdir -p "$work/prometheus"
cp deploy/prometheus/prometheus.yml deploy/prometheus/alerts.yml deploy/prometheus/recording.yml "$work/prometheus/"
# The receivers point at a local webhook standing in for the phone and the heartbeat service.
hook=$(free_port)
python3 - "$work" "$hook" <<'EOF' &
import http.server, pathlib, sys
work = pathlib.Path(sys.argv[1])
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        with open(work / 'received.log', 'ab') as f:
            f.write(body + b'\n')
        self.send_response(200); self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(('127.0.0.1', int(sys.argv[2])), Hook).serve_forever()
EOF
pids+=($!)
wait_for_port "$hook"
sed -e "s|http://127.0.0.1:8000/hook|http://127.0.0.1:$hook/hook|" \
  -e "s|https://hc-ping.com/REPLACE-WITH-YOUR-CHECK-UUID|http://127.0.0.1:$hook/heartbeat|" \
  deploy/alertmanager/alertmanager.yml >"$work/alertmanager.yml"
grep '^sudo amtool check-config' <<<"$night" | scratch_paths | bash >/dev/null
prometheus-alertmanager --config.file="$work/alertmanager.yml" --storage.path="$work/am" \
  --web.listen-address=127.0.0.1:9093 --cluster.listen-address= >"$work/am.log" 2>&1 &
pids+=($!)
wait_for_port 9093
# The README ends the night alarm with `dexcom_exporter drill` (tests/integration/drill.rs runs
# it against a real chain); here a plain test alert shows the shipped file delivers.
[ "$(tail -n 1 <<<"$night")" = "dexcom_exporter drill" ] \
  || { echo "the README's night alarm no longer ends with dexcom_exporter drill" >&2; exit 1; }
amtool alert add DexcomGlucoseUrgentLow severity=critical account=test \
  --annotation=summary="test: 50 mg/dL (2.8 mmol/L)" --alertmanager.url=http://127.0.0.1:9093
for _ in $(seq 1 150); do
  grep -q '"alertname":"DexcomGlucoseUrgentLow"' "$work/received.log" 2>/dev/null && break
  sleep 0.2
done
grep -q '"receiver":"glucose-critical"' "$work/received.log" \
  || { echo "the test alert did not reach the phone receivers" >&2; cat "$work/am.log" >&2; exit 1; }
echo "ok: the test alert reached glucose-critical (Pushover, Telegram and the webhook)"

echo "--> backfill of the demo, loaded by promtool"
grep -q 'dexcom_exporter backfill --demo' docs/remote-write.md
cargo run --quiet --release -- backfill --demo --output "$work/demo.om" 2>/dev/null
tail -n 1 "$work/demo.om" | grep -qx '# EOF'
grep -q 'promtool tsdb create-blocks-from openmetrics dexcom.om ./blocks' docs/remote-write.md
promtool tsdb create-blocks-from openmetrics "$work/demo.om" "$work/blocks" >/dev/null
echo "ok: backfill --demo makes blocks promtool accepts"

echo "--> the package build line"
grep -q '^cargo build --release --locked && cargo deb --no-build --locked$' README.md
grep -q '^sudo apt install ./target/debian/dexcom-exporter_0.1.0-1_amd64.deb$' README.md
echo "ok: the README's cargo deb line is the one check-deb.sh runs, and it installs what it built"
