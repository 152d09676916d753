#!/usr/bin/env bash
# Builds the amd64 Debian package and checks it the way a user meets it: lintian, `dpkg -i`,
# `systemd-analyze verify` of the installed unit, the installed binary's --demo serving
# /metrics, the deployment tests against the installed binary, then `dpkg -P` leaving no file
# behind. Everything from `apt install` on runs in a throwaway root (packaging/throwaway-root.sh):
# the machine's own installation, if it has one, is neither purged nor stopped nor changed.
# Run as root (CI is). `bash packaging/check-deb.sh`
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/lib.sh

# On the host: build, lint, then go on in the throwaway root.
build_and_lint() {
  ensure_cargo_deb

  echo "--> cargo build --release and cargo deb"
  cargo build --release --locked --quiet --bin dexcom_exporter
  local deb
  deb=$(cargo deb --no-build --locked 2>/dev/null | tail -n 1)
  echo "package: $deb ($(du -k "$deb" | cut -f1) KiB)"

  echo "--> lintian"
  local lintian_out
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

  # The throwaway root has no network: build the deployment tests out here.
  cargo test --locked --quiet --test integration --no-run
  echo "--> into a throwaway root: the host's /etc, /usr, /var through overlays; /run and network its own"
  bash packaging/throwaway-root.sh bash "$0" --in-throwaway-root "$deb"
}

# In the throwaway root: install, check the installed files, purge.
install_and_check() {
  local deb=$1
  echo "--> apt install ./package (as the README says; dpkg -i underneath)"
  # A copy installed on this machine is purged here, in the throwaway root only.
  dpkg -P dexcom-exporter >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >/dev/null
  dpkg -s dexcom-exporter | grep -q '^Status: install ok installed'
  local installed
  installed=$(dpkg -L dexcom-exporter)

  echo "--> man dexcom_exporter, the shell completions, the Grafana dashboard and provisioning"
  man -P cat dexcom_exporter 2>/dev/null | grep -q -- '--storage.path' \
    || { echo "man dexcom_exporter does not show the page" >&2; exit 1; }
  for completion in /usr/share/bash-completion/completions/dexcom_exporter \
    /usr/share/zsh/vendor-completions/_dexcom_exporter \
    /usr/share/fish/vendor_completions.d/dexcom_exporter.fish; do
    grep -q 'dexcom.username' "$completion" || { echo "no completion at $completion" >&2; exit 1; }
  done
  bash -c '. /usr/share/bash-completion/completions/dexcom_exporter && complete -p dexcom_exporter' >/dev/null
  local examples=/usr/share/doc/dexcom-exporter/examples
  for shipped in grafana/dexcom.json:grafana/dexcom.json \
    deploy/grafana/provisioning/dashboards/dexcom.yml:grafana/provisioning/dashboards/dexcom.yml \
    deploy/grafana/provisioning/datasources/prometheus.yml:grafana/provisioning/datasources/prometheus.yml; do
    cmp -s "${shipped%%:*}" "$examples/${shipped#*:}" \
      || { echo "$examples/${shipped#*:} is not ${shipped%%:*}" >&2; exit 1; }
  done
  echo "man page, completions and the Grafana files installed"

  echo "--> systemd-analyze verify (installed unit)"
  local verify
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
  local left="" path
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
}

if [ "${1:-}" = --in-throwaway-root ]; then
  install_and_check "$2"
else
  build_and_lint
fi
