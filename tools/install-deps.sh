#!/usr/bin/env bash
# Installs the Debian packages InitramfsPS's tests and demo use.
#
#   tools/install-deps.sh          everything the Pester suite needs (registry, skopeo,
#                                  umoci, busybox, QEMU and a kernel, cpio readers, afl++, ...)
#   tools/install-deps.sh --demo   only busybox-static, which `build.ps1 -Task Demo` needs
#
# Runs apt-get as root, through sudo when not root. Does nothing (and needs no network)
# when every package is already installed.
set -euo pipefail

usage() {
    echo "usage: $0 [--demo]" >&2
    exit 2
}

packages=(
    busybox-static     # a static userland for bootable test images
    qemu-system-x86    # boots the produced initramfs (TCG is enough)
    linux-image-amd64  # the kernel QEMU boots: /boot/vmlinuz-*
    cpio               # GNU cpio, an independent reader of the archives
    libarchive-tools   # bsdtar, another independent reader
    zstd               # zstd CLI, to check .cpio.zst output
    pigz               # parallel gzip, to check multi-member gzip output
    skopeo             # builds and pushes test images
    umoci              # builds and unpacks reference trees
    docker-registry    # a real OCI registry on 127.0.0.1
    apache2-utils      # htpasswd -B for registry basic auth
    openssl            # the test token service's self-signed key pair
    python3            # the test token service and fault-injecting proxy (stdlib only)
    mmdebstrap         # builds the Debian minbase image the tests use (from the Debian mirror)
    time               # /usr/bin/time for memory measurements
    afl++              # afl-fuzz, for the coverage-guided fuzzing (build.ps1 -Task Fuzz)
)

case "${1:-}" in
    '') ;;
    --demo) packages=(busybox-static) ;;
    -h|--help) usage ;;
    *) usage ;;
esac
[[ $# -le 1 ]] || usage

if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "install-deps: not root and sudo is not available; run this script as root." >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
    echo "install-deps: apt-get/dpkg-query not found; this script supports Debian and Ubuntu only." >&2
    echo "install-deps: install these packages by hand: ${packages[*]}" >&2
    exit 1
fi

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ $status == installed ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-deps: all ${#packages[@]} packages already installed."
else
    echo "install-deps: installing ${missing[*]}"
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    # Recommends stay on: qemu-system-x86 needs ipxe-qemu's option ROMs for its default NIC.
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

# Some images install the kernel readable by root only; QEMU run by a user needs to read it.
shopt -s nullglob
for kernel in /boot/vmlinuz-*; do
    if [[ $(stat -c %A "$kernel") != *r?? ]]; then
        "${as_root[@]}" chmod a+r "$kernel"
        echo "install-deps: made $kernel readable by everyone."
    fi
done
