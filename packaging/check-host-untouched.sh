#!/usr/bin/env bash
# The install-safety test: runs a command (in CI, the package and README steps) on a machine
# where dexcom-exporter is installed and configured, and fails if the command changed that
# installation. Before and after, it records /etc/default/dexcom_exporter, /etc/dexcom_exporter,
# the state directory (/var/lib/dexcom_exporter and systemd's private copy), the unit, its
# drop-ins, whether it is enabled, and, when systemd runs, the service's PID and restart count;
# files by content hash, mode and owner. Hashes stay in a private directory: a diff names the
# files that changed, never a hash of the password file.
# If the package is not installed, it is installed and configured here the way the README
# does it (a username, a password file, the unit enabled, a state directory the login gate
# wrote through `check` against the simulator), and purged again afterwards, whatever happens.
# Root only. `bash packaging/check-host-untouched.sh COMMAND [ARG...]`
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/lib.sh

[ "$#" -gt 0 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "$0: needs root (it may install the package)" >&2; exit 2; }

private=$(mktemp -d)
installed_here=0
sim=""

restore() {
  [ -n "$sim" ] && kill "$sim" 2>/dev/null
  if [ "$installed_here" = 1 ]; then
    systemctl disable dexcom_exporter >/dev/null 2>&1 || true
    dpkg -P dexcom-exporter >/dev/null
    rm -rf /etc/dexcom_exporter /var/lib/dexcom_exporter /var/lib/private/dexcom_exporter
    echo "host restored: dexcom-exporter purged again"
  fi
  rm -rf "$private"
}
trap restore EXIT

# One line per fact; a file's content as `sha256=HASH`, which the report masks.
snapshot() {
  local path
  echo "package: $(dpkg-query -W -f '${Status} ${Version}' dexcom-exporter 2>/dev/null || echo absent)"
  for path in /etc/default/dexcom_exporter /etc/dexcom_exporter /var/lib/dexcom_exporter \
    /var/lib/private/dexcom_exporter /usr/lib/systemd/system/dexcom_exporter.service \
    /etc/systemd/system/dexcom_exporter.service /etc/systemd/system/dexcom_exporter.service.d; do
    if [ ! -e "$path" ] && [ ! -L "$path" ]; then
      echo "$path: absent"
      continue
    fi
    # The state directory is a symlink into /var/lib/private: -P records the link itself.
    find -P "$path" -printf '%p: %y %m %u:%g %l\n' | sort
    if [ "$state_contents" = 1 ] || [[ "$path" != /var/lib/* ]]; then
      find -P "$path" -type f -print0 | sort -z | xargs -0 -r sha256sum | awk '{ print $2 ": sha256=" $1 }'
    fi
  done
  for path in /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
    /var/lib/systemd/deb-systemd-helper-masked; do
    [ -d "$path" ] && find "$path" -name '*dexcom_exporter*' -printf '%p -> %l\n' | sort
  done
  echo "enabled: $(systemctl is-enabled dexcom_exporter.service 2>/dev/null || true)"
  if [ -d /run/systemd/system ]; then
    systemctl show -p ActiveState -p SubState -p MainPID -p NRestarts -p ExecMainStartTimestamp \
      dexcom_exporter.service
  fi
}

# Installed and configured as a user would, the login gate's state written by `check`.
install_and_configure() {
  echo "--> dexcom-exporter is not installed: installing and configuring it for the test"
  ensure_cargo_deb
  cargo build --release --locked --quiet --bin dexcom_exporter --bin share_simulator
  local deb password port
  deb=$(cargo deb --no-build --locked 2>/dev/null | tail -n 1)
  installed_here=1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >/dev/null
  sed -i 's/^DEXCOM_USERNAME=.*/DEXCOM_USERNAME=alice/' /etc/default/dexcom_exporter
  password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
  install -d -m 0700 /etc/dexcom_exporter
  (umask 077; printf '%s\n' "$password" >/etc/dexcom_exporter/password)
  # The layout systemd gives a DynamicUser= service's StateDirectory=.
  install -d -m 0700 /var/lib/private/dexcom_exporter
  ln -s private/dexcom_exporter /var/lib/dexcom_exporter
  port=$(free_port)
  target/release/share_simulator --listen "127.0.0.1:$port" --username alice --password "$password" \
    --reading-interval 2s >/dev/null 2>&1 &
  sim=$!
  wait_for_port "$port"
  # A refused password first, then the right one: the gate's memory holds a failure and a
  # confirmed password, as a real installation's does after a typo was fixed.
  printf 'a typo\n' >"$private/typo"
  for file in "$private/typo" /etc/dexcom_exporter/password; do
    /usr/bin/dexcom_exporter check --dexcom.username alice --dexcom.password-file "$file" \
      --dexcom.base-url "http://127.0.0.1:$port/ShareWebServices/Services/" \
      --storage.path /var/lib/dexcom_exporter >/dev/null 2>&1 || true
  done
  kill "$sim"
  wait "$sim" 2>/dev/null || true
  sim=""
  systemctl enable dexcom_exporter.service >/dev/null 2>&1
  [ -n "$(find /var/lib/private/dexcom_exporter -type f -name '*.json')" ] \
    || { echo "check wrote no state" >&2; exit 1; }
}

if ! dpkg-query -W -f '${Status}' dexcom-exporter 2>/dev/null | grep -q 'install ok installed'; then
  install_and_configure
fi
# A running service writes its own state (cursors, the learned upload delay): then only the
# state directory's names, modes and owners are compared, and its PID must not change.
state_contents=1
if [ -d /run/systemd/system ] && systemctl is-active -q dexcom_exporter.service; then
  state_contents=0
  echo "the service is running: its state directory is compared by names, modes and owners"
fi
snapshot >"$private/before"
echo "--> recorded this machine's installation ($(wc -l <"$private/before") facts); running: $*"

status=0
"$@" || status=$?

snapshot >"$private/after"
if ! cmp -s "$private/before" "$private/after"; then
  echo "the command changed this machine's installation (- before, + after; sha256 masked):" >&2
  diff "$private/before" "$private/after" | grep '^[<>]' | sed -e 's/sha256=[0-9a-f]*/content/' \
    -e 's/^</-/' -e 's/^>/+/' >&2 || true
  exit 1
fi
echo "ok: this machine's installation is as it was ($(wc -l <"$private/after") facts, byte for byte)"
exit "$status"
