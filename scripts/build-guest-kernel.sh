#!/usr/bin/env bash
# Build Kindling's small x86-64 test/demo guest: a PVH vmlinux (plus bzImage)
# from Debian's linux-source-6.1 with guest/kernel/config.fragment and
# guest/kernel/patches/*.patch, and a busybox initramfs from guest/initramfs/
# with the guest agent (guest/agent/agent.c) as /bin/kindling-agent, and the
# ivshmem and uio test tools (guest/ivshmem/ivshmem-peer.c, guest/uio/uio-peer.c), which tests copy in.
#
# Usage:
#   scripts/build-guest-kernel.sh              build if needed; last stdout line = output dir
#   scripts/build-guest-kernel.sh --print-dir  print the output dir; exit 1 if not built
#   dir=$(scripts/build-guest-kernel.sh | tail -1)
#
# Exit status 69: this machine cannot provide the packages (a distribution
# without linux-source-6.1, or no apt); one stderr line
# "[guest] unavailable: <reason>" says why. Other failures exit 1 or the
# failed command's status.
#
# Output dir: ${KINDLING_CACHE:-$HOME/.cache/kindling}/guest-<hash>/ with
#   vmlinux            PVH ELF kernel (boot this one: no decompression)
#   bzImage            same kernel, LZ4 bzImage (decompression: ~23 s emulated)
#   initramfs.cpio     busybox initramfs, uncompressed (fastest to unpack here)
#   initramfs.cpio.gz  the same archive, gzip -9 (~60 s more to unpack here)
#   cmdline            base kernel command line (append your own arguments)
#   kindling-agent     the guest agent, also in the initramfs as /bin/kindling-agent
#   agent              the guest agent's protocol version (docs/agent-protocol.md)
#   ivshmem-peer       the ivshmem PCI test tool (not in the initramfs: 700 kB cost every boot ~4 s here)
#   uio-peer           the uio platform-device test tool (the same)
#   config  System.map  initramfs.list  inputs   (for reference)
# where <hash> is a sha256 over the inputs (fragment, patches, initramfs, agent and
# ivshmem, uio and common files, this script, and the linux-source-6.1 / busybox-static package versions).
# Progress goes to stderr; the build log to <cache>/work/build-<hash>.log.
# Set KINDLING_GUEST_VERBOSE=1 to stream the build output to stderr too.
# See guest/README.md.
set -euo pipefail

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
ROOT=$(cd "$(dirname "$SCRIPT_PATH")/.." && pwd)
GUEST="$ROOT/guest"
FRAGMENT="$GUEST/kernel/config.fragment"
PATCH_DIR="$GUEST/kernel/patches"
INITRAMFS_DIR="$GUEST/initramfs"
CACHE="${KINDLING_CACHE:-${HOME:-/root}/.cache/kindling}"
SRC_TARBALL=/usr/src/linux-source-6.1.tar.xz
SRC_PKG=linux-source-6.1
PACKAGES=(linux-source-6.1 build-essential bc bison flex libelf-dev libssl-dev
          cpio busybox-static e2fsprogs lz4 gzip)
# The base command line (guest/README.md); callers append their own arguments
# (e.g. "quiet percpu_alloc=page", virtio_mmio.device=..., kindling.action=...).
CMDLINE='console=ttyS0 noxsave clearcpuid=popcnt,smap,smep,fsgsbase,rdpid,umip,pku,avx,avx2,bmi1,bmi2,erms,fsrm,rdseed,rdrand,clflushopt,clwb reboot=k panic=-1 rodata=off'

START=$SECONDS
log() { printf '[guest] %s [%ds]\n' "$*" $((SECONDS - START)) >&2; }
die() { printf '[guest] error: %s\n' "$*" >&2; exit 1; }
EX_UNAVAILABLE=69
unavailable() { printf '[guest] unavailable: %s\n' "$*" >&2; exit "$EX_UNAVAILABLE"; }

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$SCRIPT_PATH"
}

PRINT_DIR=0
for arg in "$@"; do
    case $arg in
        --print-dir) PRINT_DIR=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

pkg_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) == ii* ]]
}
pkg_version() {
    dpkg-query -W -f='${Version}' "$1"
}
pkg_has_candidate() {
    local c
    c=$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
    [[ -n $c && $c != "(none)" ]]
}

ensure_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null && command -v dpkg-query >/dev/null ||
        unavailable "no apt-get/dpkg on this machine: the guest is built from Debian's $SRC_PKG"
    ((EUID == 0)) || die "missing packages (${missing[*]}); install them or run as root"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || log "apt-get update failed; using the package lists as they are"
    local none=()
    for p in "${missing[@]}"; do
        pkg_has_candidate "$p" || none+=("$p")
    done
    ((${#none[@]} == 0)) ||
        unavailable "the apt sources here lack ${none[*]} (the guest is built from Debian 12 bookworm's packages)"
    log "installing packages: ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# sha256 of everything the outputs depend on; $1 = "all" or "src".
input_manifest() {
    echo "$SRC_PKG $(pkg_version "$SRC_PKG")"
    local f
    (cd "$ROOT" && find guest/kernel/patches -type f -name '*.patch' | LC_ALL=C sort |
        while read -r f; do sha256sum "$f"; done)
    [[ $1 == src ]] && return 0
    echo "busybox-static $(pkg_version busybox-static)"
    (cd "$ROOT" && { echo guest/kernel/config.fragment;
                     find guest/initramfs guest/agent guest/common guest/ivshmem guest/uio -type f | LC_ALL=C sort; } |
        while read -r f; do sha256sum "$f"; done)
    echo "$(sha256sum < "$SCRIPT_PATH" | cut -d' ' -f1)  scripts/build-guest-kernel.sh"
}
hash_of() { input_manifest "$1" | sha256sum | cut -c1-16; }
# What the kernel objects depend on: the source and patches, the fragment, and the kernel steps of
# this script (KERNEL_RECIPE: bump it when the configure or build steps below change).
KERNEL_RECIPE=1
kernel_key() {
    { input_manifest src; sha256sum < "$FRAGMENT"; echo "recipe $KERNEL_RECIPE"; } | sha256sum | cut -c1-16
}

outputs_present() { [[ -f $1/vmlinux && -f $1/initramfs.cpio.gz && -f $1/initramfs.cpio && -f $1/agent ]]; }

# --- cache lookup ---------------------------------------------------------
if ((PRINT_DIR)); then
    pkg_installed "$SRC_PKG" && pkg_installed busybox-static ||
        { echo "[guest] not built (packages missing)" >&2; exit 1; }
    OUT="$CACHE/guest-$(hash_of all)"
    echo "$OUT"
    outputs_present "$OUT" || { echo "[guest] not built: $OUT" >&2; exit 1; }
    exit 0
fi

ensure_packages
KEY=$(hash_of all)
OUT="$CACHE/guest-$KEY"
if outputs_present "$OUT"; then
    log "cached: $OUT"
    echo "$OUT"
    exit 0
fi

mkdir -p "$CACHE/work"
exec 9>"$CACHE/.build.lock"
if ! flock -n 9; then
    log "waiting for another build (lock $CACHE/.build.lock)"
    flock 9
fi
if outputs_present "$OUT"; then          # built by whoever held the lock
    log "cached: $OUT"
    echo "$OUT"
    exit 0
fi

SRC_KEY=$(hash_of src)
SRC_TOP="$CACHE/work/src-$SRC_KEY"
SRC="$SRC_TOP/linux-source-6.1"
OBJ="$CACHE/work/obj-$SRC_KEY"           # reused across config changes (incremental)
LOG="$CACHE/work/build-$KEY.log"
OUT_TMP="$CACHE/guest-$KEY.tmp.$$"
SRC_TMP="$SRC_TOP.tmp.$$"
cleanup() { rm -rf "$OUT_TMP" "$SRC_TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
# Leftovers of interrupted builds (nobody else builds while we hold the lock).
rm -rf "$CACHE"/guest-*.tmp.* "$CACHE"/work/src-*.tmp.*
: > "$LOG"

# run <cmd...>: output to the log (and stderr if verbose); on failure show its tail.
run() {
    local rc=0
    if [[ ${KINDLING_GUEST_VERBOSE:-0} == 1 ]]; then
        "$@" 2>&1 | tee -a "$LOG" >&2 || rc=$?
    else
        "$@" >> "$LOG" 2>&1 || rc=$?
    fi
    if ((rc != 0)); then
        echo "[guest] command failed (exit $rc): $*" >&2
        echo "[guest] last lines of $LOG:" >&2
        tail -n 40 "$LOG" >&2
        exit "$rc"
    fi
}

# --- source: unpack once per (package version, patches), patched ------------
if [[ ! -f $SRC_TOP/.complete ]]; then
    log "unpacking linux-source ($(pkg_version "$SRC_PKG"))"
    [[ -f $SRC_TARBALL ]] || die "$SRC_TARBALL not found"
    rm -rf "$SRC_TMP"
    mkdir -p "$SRC_TMP"
    tar -C "$SRC_TMP" -xf "$SRC_TARBALL"
    [[ -d $SRC_TMP/linux-source-6.1 ]] || die "unexpected tarball layout"
    shopt -s nullglob
    patches=("$PATCH_DIR"/*.patch)
    shopt -u nullglob
    for p in "${patches[@]}"; do
        echo "applying $(basename "$p")" >> "$LOG"
        run patch -p1 --forward --batch -d "$SRC_TMP/linux-source-6.1" -i "$p"
    done
    touch "$SRC_TMP/.complete"
    rm -rf "$SRC_TOP"
    mv -T "$SRC_TMP" "$SRC_TOP"
fi

# --- kernel: configure and build, skipped when these objects were built from the same inputs --------
# (a change to the initramfs alone then costs seconds, not a no-op kernel make of minutes)
KERNEL_STAMP="$OBJ/.kindling-kernel-$(kernel_key)"
export KBUILD_BUILD_USER=kindling KBUILD_BUILD_HOST=kindling
export KBUILD_BUILD_TIMESTAMP="Thu Jan  1 00:00:00 UTC 1970"
MAKE=(make -C "$SRC" O="$OBJ" ARCH=x86)
if [[ -f $KERNEL_STAMP && -f $OBJ/vmlinux && -f $OBJ/arch/x86/boot/bzImage ]]; then
    log "kernel objects up to date"
else
    log "configuring"
    mkdir -p "$OBJ"
    rm -f "$OBJ"/.kindling-kernel-*     # the objects are about to change
    run "${MAKE[@]}" tinyconfig
    run "$SRC/scripts/kconfig/merge_config.sh" -m -O "$OBJ" "$OBJ/.config" "$FRAGMENT"
    run "${MAKE[@]}" olddefconfig

    # Every option of the fragment must have resolved exactly as requested.
    mismatches=$(awk '
        FNR == NR {
            if (match($0, /^CONFIG_[A-Za-z0-9_]+=/)) {
                name = substr($0, 1, RLENGTH - 1); want[name] = substr($0, RLENGTH + 1); order[++n] = name
            } else if (match($0, /^# CONFIG_[A-Za-z0-9_]+ is not set$/)) {
                name = $2; want[name] = "n"; order[++n] = name
            }
            next
        }
        match($0, /^CONFIG_[A-Za-z0-9_]+=/) { have[substr($0, 1, RLENGTH - 1)] = substr($0, RLENGTH + 1) }
        match($0, /^# CONFIG_[A-Za-z0-9_]+ is not set$/) { have[$2] = "n" }
        END {
            for (i = 1; i <= n; i++) {
                name = order[i]; got = (name in have) ? have[name] : "n"
                if (got != want[name])
                    printf "  %s: wanted %s, got %s%s\n", name, want[name], got, (name in have) ? "" : " (absent)"
            }
        }' "$FRAGMENT" "$OBJ/.config")
    if [[ -n $mismatches ]]; then
        printf '[guest] error: resolved .config differs from %s:\n%s\n' "$FRAGMENT" "$mismatches" >&2
        exit 1
    fi

    log "building vmlinux (several minutes)"
    run "${MAKE[@]}" -j"$(nproc)" vmlinux
    log "building bzImage"
    run "${MAKE[@]}" -j"$(nproc)" bzImage
    touch "$KERNEL_STAMP"
fi

# --- initramfs ---------------------------------------------------------------
log "building initramfs"
rm -rf "$OUT_TMP"
mkdir -p "$OUT_TMP"
BUSYBOX=/bin/busybox
[[ -x $BUSYBOX ]] || die "$BUSYBOX missing (busybox-static)"
GEN_CPIO="$OBJ/usr/gen_init_cpio"
if [[ ! -x $GEN_CPIO ]]; then
    GEN_CPIO="$OBJ/kindling-gen_init_cpio"
    run gcc -O2 -o "$GEN_CPIO" "$SRC/usr/gen_init_cpio.c"
fi
AGENT_SRC="$GUEST/agent/agent.c"
AGENT_VERSION=1                          # docs/agent-protocol.md
run gcc -static -Os -s -Wall -o "$OUT_TMP/kindling-agent" "$AGENT_SRC"
run gcc -static -Os -s -Wall -o "$OUT_TMP/ivshmem-peer" "$GUEST/ivshmem/ivshmem-peer.c"
run gcc -static -Os -s -Wall -o "$OUT_TMP/uio-peer" "$GUEST/uio/uio-peer.c"
available=" $("$BUSYBOX" --list | tr '\n' ' ') "
{
    echo "dir /dev 0755 0 0"
    echo "nod /dev/console 0600 0 0 c 5 1"
    echo "dir /proc 0555 0 0"
    echo "dir /sys 0555 0 0"
    echo "dir /tmp 1777 0 0"
    echo "dir /root 0700 0 0"
    echo "dir /etc 0755 0 0"
    echo "dir /bin 0755 0 0"
    echo "dir /mnt 0755 0 0"
    echo "dir /mnt/rw 0755 0 0"
    echo "dir /mnt/ro 0755 0 0"
    echo "dir /newroot 0755 0 0"
    echo "file /etc/fstab $INITRAMFS_DIR/fstab 0644 0 0"
    echo "file /bin/busybox $BUSYBOX 0755 0 0"
    echo "file /bin/kindling-agent $OUT_TMP/kindling-agent 0755 0 0"
    while read -r applet _; do
        [[ -z $applet || $applet == \#* ]] && continue
        [[ $available == *" $applet "* ]] || die "busybox has no applet '$applet' (guest/initramfs/applets)"
        echo "slink /bin/$applet busybox 0777 0 0"
    done < "$INITRAMFS_DIR/applets"
    echo "file /init $INITRAMFS_DIR/init 0755 0 0"
} > "$OUT_TMP/initramfs.list"
# Two encodings of the same archive. Where KVM emulates guest kernel code,
# inflating the ~1 MB .gz takes about 70 s of boot, copying the plain 2 MB
# archive about 10 s: boot initramfs.cpio there. Both work anywhere.
"$GEN_CPIO" -t 0 "$OUT_TMP/initramfs.list" > "$OUT_TMP/initramfs.cpio" 2>> "$LOG" ||
    die "gen_init_cpio failed (see $LOG)"
gzip -9 -n < "$OUT_TMP/initramfs.cpio" > "$OUT_TMP/initramfs.cpio.gz"

# --- outputs -----------------------------------------------------------------
cp "$OBJ/vmlinux" "$OUT_TMP/vmlinux"
cp "$OBJ/arch/x86/boot/bzImage" "$OUT_TMP/bzImage"
cp "$OBJ/System.map" "$OUT_TMP/System.map"
cp "$OBJ/.config" "$OUT_TMP/config"
echo "$CMDLINE" > "$OUT_TMP/cmdline"
echo "$AGENT_VERSION" > "$OUT_TMP/agent"
input_manifest all > "$OUT_TMP/inputs"
rm -rf "$OUT"
mv -T "$OUT_TMP" "$OUT"
log "done: $OUT"
echo "$OUT"
