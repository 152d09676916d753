#!/usr/bin/env bash
# Runs a command in a throwaway root, so a package test can `apt install` and `dpkg -P` the
# package without touching the machine it runs on, which may be the one whose alarm is in use:
# - /etc, /usr and /var are the host's, seen through overlays whose writes land in a tmpfs
#   that disappears with the namespace (dpkg's database included: installing, purging or
#   editing a file in there changes nothing on the host);
# - /run is a tmpfs of its own, so a maintainer script finds no /run/systemd/system and no
#   bus: it cannot stop, start, enable or reload anything in the host's systemd;
# - the network is a namespace of its own with only loopback, so every port is free and
#   nothing in there can reach a service of the host (its Alertmanager on 9093, say).
# Root only (mount and network namespaces). The build cache (target/, ~/.cargo) is outside
# the overlays and shared: fetch crates before coming in, there is no network in here.
# `bash packaging/throwaway-root.sh COMMAND [ARG...]`
set -euo pipefail

if [ "${DEXCOM_THROWAWAY_ROOT:-}" = 1 ]; then
  # Inside the new namespaces (see below): put the overlays in place, then run the command.
  scratch=$1
  shift
  mount -t tmpfs -o mode=0700,size=4g dexcom-throwaway "$scratch"
  for dir in etc usr var; do
    mkdir "$scratch/$dir" "$scratch/$dir.work"
    mount -t overlay dexcom-throwaway \
      -o "lowerdir=/$dir,upperdir=$scratch/$dir,workdir=$scratch/$dir.work" "/$dir"
  done
  mount -t tmpfs -o mode=0755 dexcom-throwaway-run /run
  # deb-systemd-invoke also asks policy-rc.d: 101 means "no action allowed", should a script
  # still find a systemd to talk to.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
  ip link set lo up
  exec "$@"
fi

[ "$#" -gt 0 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "$0: needs root (mount and network namespaces)" >&2; exit 2; }
scratch=$(mktemp -d /tmp/dexcom-throwaway.XXXXXX)
status=0
# --propagation private: no mount made in there is seen out here.
DEXCOM_THROWAWAY_ROOT=1 unshare --mount --net --propagation private -- \
  bash "$0" "$scratch" "$@" || status=$?
# The tmpfs was mounted in the namespace only; out here the directory is empty.
rmdir "$scratch"
exit "$status"
