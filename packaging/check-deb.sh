#!/usr/bin/env bash
# Builds the amd64 Debian package and checks it the way a user meets it: lintian, `dpkg -i`,
# `systemd-analyze verify` of the installed unit, the installed binary's --demo serving
# /metrics, the deployment tests against the installed binary, then `dpkg -P` leaving no file
# behind. Run as root (CI is). `bash packaging/check-deb.sh`
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/lib.sh

CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi

echo "--> cargo build --release and cargo deb"
cargo build --release --locked --quiet --bin dexcom_exporter
deb=$(cargo deb --no-build --locked 2>/dev/null | tail -n 1)
echo "package: $deb ($(du -k "$deb" | cut -f1) KiB)"

echo "--> lintian"
lintian_out=$(lintian --allow-root "$deb" 2>&1 || true)
echo "${lintian_out:-(no tags)}"
if grep -q '^E:' <<<"$lintian_out"; then
  echo "lintian reports errors" >&2
  exit 1
fi
# Every warning is explained in debian/lintian-overrides; a new one fails the check.
if grep -q '^W:' <<<"$lintian_out"; then
  echo "lintian reports a warning that is neither fixed nor explained" >&2
  exit 1
fi

echo "--> apt install ./package (as the README says; dpkg -i underneath)"
dpkg -P dexcom-exporter >/dev/null 2>&1 || true
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >/dev/null
dpkg -s dexcom-exporter | grep -q '^Status: install ok installed'
installed=$(dpkg -L dexcom-exporter)

echo "--> man dexcom_exporter and the shell completions"
man -P cat dexcom_exporter 2>/dev/null | grep -q -- '--storage.path' \
  || { echo "man dexcom_exporter does not show the page" >&2; exit 1; }
for completion in /usr/share/bash-completion/completions/dexcom_exporter \
  /usr/share/zsh/vendor-completions/_dexcom_exporter \
  /usr/share/fish/vendor_completions.d/dexcom_exporter.fish; do
  grep -q 'dexcom.username' "$completion" || { echo "no completion at $completion" >&2; exit 1; }
done
bash -c '. /usr/share/bash-completion/completions/dexcom_exporter && complete -p dexcom_exporter' >/dev/null
echo "man page and completions installed"

echo "--> systemd-analyze verify (installed unit)"
verify=$(systemd-analyze verify /usr/lib/systemd/system/dexcom_exporter.service 2>&1 || true)
if [ -n "$verify" ]; then
  echo "$verify" >&2
  exit 1
fi

echo "--> the installed binary's --demo"
/usr/bin/dexcom_exporter --version
demo_serves /usr/bin/dexcom_exporter || { echo "the installed binary's demo served no glucose" >&2; exit 1; }
echo "demo served glucose"

echo "--> deployment tests against the installed binary"
DEXCOM_EXPORTER_INSTALLED_BINARY=/usr/bin/dexcom_exporter \
  cargo test --locked --quiet --test integration deployment

echo "--> dpkg -P leaves nothing behind"
dpkg -P dexcom-exporter
left=""
while IFS= read -r path; do
  if [ -e "$path" ] && [ ! -d "$path" ]; then
    left="$left $path"
  fi
done <<<"$installed"
for path in /etc/default/dexcom_exporter /var/lib/dexcom_exporter /var/lib/private/dexcom_exporter; do
  [ -e "$path" ] && left="$left $path"
done
if [ -n "$left" ]; then
  echo "left behind after purge:$left" >&2
  exit 1
fi
echo "purged: no file left"
