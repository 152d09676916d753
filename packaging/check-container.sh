#!/usr/bin/env bash
# Builds the amd64 image and runs it as users would, with Debian's podman: --demo serving
# /metrics and /-/ready and stopping cleanly on SIGTERM; then a real configuration against a
# Share simulator on the host, the password as a podman secret (a file, never an environment
# variable) and the state on a named volume. Run as root: `bash packaging/check-container.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/lib.sh

# These machines need runc and lower ulimits (see shared/reference/packaging-notes.md).
conf=$(mktemp -d)/containers.conf
cat >"$conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF=$conf

volumes_before=$(podman volume ls -q | wc -l)

echo "--> build"
image=$(bash packaging/build-image.sh)
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "image: $image ($((size / 1024)) KiB)"

cleanup() {
  # -v: the anonymous volume the image's VOLUME gives the demo container goes with it.
  podman rm -f -v dexcom-check-demo dexcom-check-real >/dev/null 2>&1 || true
  podman secret rm dexcom-check-password >/dev/null 2>&1 || true
  podman volume rm -f dexcom-check-state >/dev/null 2>&1 || true
  [ -n "${sim:-}" ] && kill "$sim" 2>/dev/null || true
}
trap cleanup EXIT


# Free loopback ports, so the check never collides with a service of this machine.
read -r demo_port sim_port real_port <<<"$(free_port 3)"

echo "--> --demo, published on loopback"
podman run -d --name dexcom-check-demo -p "127.0.0.1:$demo_port:18018" "$image" \
  --demo --dexcom.reading-interval 2s >/dev/null
wait_for http://127.0.0.1:$demo_port/metrics 'dexcom_glucose_mg_per_dl{account="sam"}'
wait_for http://127.0.0.1:$demo_port/-/ready Ready
podman stop --time 10 dexcom-check-demo >/dev/null
code=$(podman inspect --format '{{.State.ExitCode}}' dexcom-check-demo)
[ "$code" = 0 ] || { echo "exit code $code after SIGTERM" >&2; exit 1; }
echo "demo served /metrics and /-/ready, stopped cleanly (exit 0)"

echo "--> a real configuration: password as a podman secret, state on a volume"
cargo build --locked --quiet --bin share_simulator
target/debug/share_simulator --listen "127.0.0.1:$sim_port" --username alice --password 'c0ntainer secret' \
  --reading-interval 2s >/dev/null 2>&1 &
sim=$!
printf 'c0ntainer secret\n' | podman secret create dexcom-check-password - >/dev/null
podman run -d --name dexcom-check-real --network host \
  --secret dexcom-check-password,target=/run/secrets/dexcom-password,uid=65532,mode=0400 \
  -v dexcom-check-state:/var/lib/dexcom_exporter \
  "$image" \
  --dexcom.username alice --dexcom.password-file /run/secrets/dexcom-password \
  --dexcom.base-url "http://127.0.0.1:$sim_port/ShareWebServices/Services/" \
  --dexcom.reading-interval 2s --web.listen-address "127.0.0.1:$real_port" >/dev/null
wait_for http://127.0.0.1:$real_port/metrics 'dexcom_glucose_mg_per_dl{account="alice"}'
if podman logs dexcom-check-real 2>&1 | grep -q 'c0ntainer secret'; then
  echo "the password reached the log" >&2
  exit 1
fi
podman stop --time 10 dexcom-check-real >/dev/null
mount=$(podman volume inspect --format '{{.Mountpoint}}' dexcom-check-state)
# The login gate's memory, one file per Dexcom identity (the username's, pointing at the
# account ID Share resolved it to, and the ID's).
ls "$mount" | grep -q '^gate-.*\.json$' || { echo "no state file on the volume" >&2; exit 1; }
echo "served alice with the password from a secret file; state kept on the volume"

echo "--> nothing left behind"
cleanup
trap - EXIT
volumes_after=$(podman volume ls -q | wc -l)
[ "$volumes_after" -eq "$volumes_before" ] \
  || { echo "the check left $((volumes_after - volumes_before)) podman volume(s) behind" >&2; exit 1; }
echo "no container, secret or volume left ($volumes_after volumes before and after)"
