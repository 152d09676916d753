#!/usr/bin/env bash
# Builds the container image: a statically linked binary (glibc static-pie, aws-lc included)
# copied into a FROM scratch image with the CA certificates and a non-root user.
#   bash packaging/build-image.sh              # localhost/dexcom-exporter:VERSION, amd64
#   ARCH=arm64 bash packaging/build-image.sh   # cross-built for arm64 (see release-arm64.sh)
# Needs podman (Debian: podman buildah runc) and, for arm64, the cross toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${ARCH:-amd64}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
case "$ARCH" in
  amd64) TARGET=x86_64-unknown-linux-gnu ;;
  arm64)
    TARGET=aarch64-unknown-linux-gnu
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    ;;
  *) echo "ARCH must be amd64 or arm64" >&2; exit 2 ;;
esac
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --locked --quiet --target "$TARGET" --bin dexcom_exporter
context=target/container-context-$ARCH
rm -rf "$context"
mkdir -p "$context/state"
cp packaging/container/Containerfile packaging/container/passwd packaging/container/group "$context/"
cp /etc/ssl/certs/ca-certificates.crt "$context/"
cp "target/$TARGET/release/dexcom_exporter" "$context/"
tag=localhost/dexcom-exporter:$VERSION
[ "$ARCH" = amd64 ] || tag=$tag-$ARCH
podman build --quiet --platform "linux/$ARCH" --tag "$tag" "$context" >/dev/null
echo "$tag"
