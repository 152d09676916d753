# Shared by the packaging checks: `. packaging/lib.sh`.

# wait_for URL NEEDLE [TRIES]: polls URL every 0.2 s until its body contains NEEDLE.
wait_for() {
  local tries=${3:-300}
  for _ in $(seq 1 "$tries"); do
    if python3 -c 'import sys,urllib.request; sys.exit(0 if sys.argv[2].encode() in urllib.request.urlopen(sys.argv[1]).read() else 1)' "$1" "$2" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  echo "no $2 at $1" >&2
  return 1
}

# free_port [N]: N (default 1) distinct loopback ports nothing listens on now (the kernel's
# pick, all held open until all are picked), so a check never collides with a service of the
# machine it runs on.
free_port() {
  python3 - "${1:-1}" <<'PY'
import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in held))
PY
}

# demo_serves BINARY... : runs `BINARY... --demo` on a free loopback port and checks it serves
# glucose on /metrics, then stops it with SIGTERM.
demo_serves() {
  local port
  port=$(free_port)
  "$@" --demo --web.listen-address "127.0.0.1:$port" --dexcom.reading-interval 2s 2>/dev/null &
  local demo=$!
  local ok=0
  wait_for "http://127.0.0.1:$port/metrics" 'dexcom_glucose_mg_per_dl{' 150 || ok=1
  kill -TERM "$demo"
  wait "$demo" || true
  return "$ok"
}

# port_open PORT: whether something listens on 127.0.0.1:PORT now.
port_open() {
  python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null
}

# wait_for_port PORT: until something listens on 127.0.0.1:PORT (60 s at most).
wait_for_port() {
  for _ in $(seq 1 300); do
    port_open "$1" && return 0
    sleep 0.2
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# wait_until_free PORT: until nothing listens on 127.0.0.1:PORT (30 s at most).
wait_until_free() {
  for _ in $(seq 1 150); do
    port_open "$1" || return 0
    sleep 0.2
  done
  echo "port $1 still in use" >&2
  return 1
}

# ensure_cargo_deb: cargo-deb at the version the package checks use (a few minutes, once).
ensure_cargo_deb() {
  local version=3.8.0
  if ! cargo deb --version 2>/dev/null | grep -q "$version"; then
    cargo install --quiet --locked cargo-deb --version "$version"
  fi
}
