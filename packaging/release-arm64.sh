#!/usr/bin/env bash
# The arm64 release (Raspberry Pi OS 64-bit and other arm64 boards), cross-compiled on an
# amd64 Debian machine: the Debian package, checked by serving --demo under
# qemu-aarch64-static, and (with podman) the container image. Not part of CI: the arm64
# standard library is a 220 MB download. Run as root: `bash packaging/release-arm64.sh`.
# The package lands at target/debian/dexcom-exporter_VERSION_arm64.deb, beside the amd64 one
# (cargo-deb 3.8 also leaves a copy under target/aarch64-unknown-linux-gnu/debian/; with
# CARGO_TARGET_DIR set, under that directory instead); the last lines printed say how to copy
# it to the Pi and install it there.
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/lib.sh
TARGET=aarch64-unknown-linux-gnu

export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static >/dev/null
rustup target add "$TARGET"
ensure_cargo_deb

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar

echo "--> cross build and package"
cargo build --release --locked --quiet --target "$TARGET" --bin dexcom_exporter
deb=$(cargo deb --target "$TARGET" --no-build --locked 2>/dev/null | tail -n 1)
dpkg-deb --info "$deb" | grep -E 'Architecture|Depends'
echo "package: $deb ($(du -k "$deb" | cut -f1) KiB)"

echo "--> the arm64 binary serves --demo under qemu-aarch64-static"
demo_serves qemu-aarch64-static -L /usr/aarch64-linux-gnu "target/$TARGET/release/dexcom_exporter" \
  || { echo "the arm64 demo served no glucose" >&2; exit 1; }
echo "arm64 demo served glucose"

if command -v podman >/dev/null; then
  echo "--> arm64 image"
  ARCH=arm64 bash packaging/build-image.sh
fi

echo "--> to the Raspberry Pi (user pi, host raspberrypi.local: put yours)"
echo "scp $deb pi@raspberrypi.local:"
echo "ssh -t pi@raspberrypi.local sudo apt install ./$(basename "$deb")"
