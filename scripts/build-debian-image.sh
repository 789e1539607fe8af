#!/usr/bin/env bash
# Build a Debian 12 (bookworm) ext4 root image for Kindling's guests: debootstrap
# (variant minbase, plus the packages asked for) from this machine's Debian
# mirror, then mke2fs -d (no loop mount). The agent's initramfs mounts the image
# and hands over to the agent in it (kindling.root=/dev/vdX).
#
# Usage:
#   scripts/build-debian-image.sh [--out PATH] [--packages p1,p2,...] [--size MIB] [--mirror URL]
#     --out       copy the image there (sparse; a reflink where the file system can)
#     --packages  extra Debian packages, comma-separated (e.g. python3)
#     --size      image size in MiB (default: what the tree uses + 25 % + 64 MiB)
#     --mirror    Debian mirror (default: the one of this machine's apt sources)
#   The last stdout line is the image path (--out, else the cached image).
#
# Cached by its inputs (this script, the package list, the mirror, the suite,
# the size) as ${KINDLING_CACHE:-$HOME/.cache/kindling}/debian-<hash>.ext4; a
# cached image is reused without root or network. Building needs root.
# Progress goes to stderr; debootstrap's log to <cache>/work/debian-<hash>.log.
# Set KINDLING_IMAGE_VERBOSE=1 to stream debootstrap's output to stderr too.
#
# Exit status 2: bad arguments. 69: this machine cannot build the image (no apt,
# no root, no Debian mirror in its apt sources); one stderr line
# "[image] unavailable: <reason>" says why. Other failures exit 1 or the failed
# command's status.
set -euo pipefail

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
CACHE="${KINDLING_CACHE:-${HOME:-/root}/.cache/kindling}"
SUITE=bookworm
HOSTNAME_IN_IMAGE=kindling
LABEL=kindling-root

START=$SECONDS
log() { printf '[image] %s [%ds]\n' "$*" $((SECONDS - START)) >&2; }
die() { printf '[image] error: %s\n' "$*" >&2; exit 1; }
EX_USAGE=2
EX_UNAVAILABLE=69
unavailable() { printf '[image] unavailable: %s\n' "$*" >&2; exit "$EX_UNAVAILABLE"; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$SCRIPT_PATH"; }
bad_usage() { printf '[image] %s (see --help)\n' "$*" >&2; exit "$EX_USAGE"; }

OUT="" PACKAGES="" SIZE="" MIRROR=""
while (($#)); do
    case $1 in
        --out|--packages|--size|--mirror)
            (($# >= 2)) || bad_usage "$1 needs a value"
            case $1 in
                --out) OUT=$2 ;;
                --packages) PACKAGES=$2 ;;
                --size) SIZE=$2 ;;
                --mirror) MIRROR=$2 ;;
            esac
            shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) bad_usage "unknown argument '$1'" ;;
    esac
done

# The package list, sorted and without repeats, so that "b,a" and "a,b,a" share one image.
pkgs=()
if [[ -n $PACKAGES ]]; then
    IFS=, read -r -a given <<< "$PACKAGES"
    for p in "${given[@]}"; do
        [[ $p =~ ^[a-z0-9][a-z0-9+.-]+$ ]] || bad_usage "--packages: '$p' is not a Debian package name"
    done
    mapfile -t pkgs < <(printf '%s\n' "${given[@]}" | LC_ALL=C sort -u)
fi
PKG_LIST=$(IFS=,; echo "${pkgs[*]}")
[[ -z $SIZE || $SIZE =~ ^[1-9][0-9]*$ ]] || bad_usage "--size must be a whole number of MiB, not '$SIZE'"

# The mirror of the apt sources serving $SUITE's main component (deb822 .sources or one-line lists).
configured_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        awk -v suite="$SUITE" '
            function flush() { if (deb && uri != "" && hasSuite && main) { print uri; found = 1; exit } deb = uri = hasSuite = main = 0 }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]*#/ { next }
            tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
            tolower($1) == "uris:" { uri = $2 }
            tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) hasSuite = 1 }
            tolower($1) == "components:" { for (i = 2; i <= NF; i++) if ($i == "main") main = 1 }
            END { if (!found) flush() }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        awk -v suite="$SUITE" '
            $1 == "deb" {
                i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) != suite) next
                for (j = i + 2; j <= NF; j++) if ($j == "main") { print $i; exit }
            }' "$f"
    done
}
if [[ -z $MIRROR ]]; then
    MIRROR=$(configured_mirror | head -n 1)
    [[ -n $MIRROR ]] || unavailable "no apt source for Debian $SUITE main on this machine (pass --mirror URL)"
fi
MIRROR=${MIRROR%/}
ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)

KEY=$({
    echo "script $(sha256sum < "$SCRIPT_PATH" | cut -d' ' -f1)"
    echo "suite $SUITE"
    echo "arch $ARCH"
    echo "mirror $MIRROR"
    echo "packages $PKG_LIST"
    echo "size ${SIZE:-auto}"
} | sha256sum | cut -c1-16)
IMAGE="$CACHE/debian-$KEY.ext4"

# deliver: the cached image to --out (or its own path), last stdout line.
deliver() {
    if [[ -n $OUT ]]; then
        mkdir -p "$(dirname "$OUT")"
        local tmp="$OUT.tmp.$$"
        cp --reflink=auto --sparse=always "$IMAGE" "$tmp" && mv -f "$tmp" "$OUT" || { rm -f "$tmp"; die "cannot write $OUT"; }
        log "image: $OUT ($(du -h --apparent-size "$OUT" | cut -f1) apparent, $(du -h "$OUT" | cut -f1) on disk)"
        echo "$OUT"
    else
        echo "$IMAGE"
    fi
}

if [[ -f $IMAGE ]]; then
    log "cached: $IMAGE"
    deliver
    exit 0
fi

# --- what the build needs ---------------------------------------------------
((EUID == 0)) || unavailable "building the image needs root (debootstrap chroots); run this as root once, then the cached image serves everyone"
command -v mke2fs >/dev/null || [[ -x /usr/sbin/mke2fs || -x /sbin/mke2fs ]] || missing_e2fs=1
export PATH="$PATH:/usr/sbin:/sbin"
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
[[ -z ${missing_e2fs:-} ]] || need+=(e2fsprogs)
[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || need+=(debian-archive-keyring)
if ((${#need[@]})); then
    command -v apt-get >/dev/null || unavailable "no apt-get on this machine to install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    log "installing packages: ${need[*]}"
    if ! apt-get install -y -qq --no-install-recommends "${need[@]}" >&2; then
        apt-get update -qq >&2 || log "apt-get update failed; using the package lists as they are"
        apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 ||
            unavailable "cannot install ${need[*]} with apt-get"
    fi
fi

mkdir -p "$CACHE/work"
exec 9>"$CACHE/.debian-$KEY.lock"
if ! flock -n 9; then
    log "waiting for another build of this image (lock $CACHE/.debian-$KEY.lock)"
    flock 9
fi
if [[ -f $IMAGE ]]; then                 # built by whoever held the lock
    log "cached: $IMAGE"
    deliver
    exit 0
fi

WORK="$CACHE/work/debian-$KEY.tmp.$$"
ROOTFS="$WORK/rootfs"
LOG="$CACHE/work/debian-$KEY.log"
# debootstrap mounts proc and sys (and may bind /dev) in the tree while it configures: an
# interrupted run can leave them, so unmount whatever is below the tree before removing it.
unmount_below() {
    local m
    while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done < <(awk -v top="$1" '{ gsub(/\\040/, " ", $2); if (index($2, top "/") == 1) print $2 }' /proc/mounts | sort -r)
}
cleanup() {
    if [[ -d $WORK ]]; then
        unmount_below "$ROOTFS"
        rm -rf --one-file-system "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
# Leftovers of interrupted builds of this image (nobody else builds it while we hold the lock).
for old in "$CACHE"/work/debian-"$KEY".tmp.*; do
    [[ -d $old ]] || continue
    unmount_below "$old/rootfs"
    rm -rf --one-file-system "$old"
done
mkdir -p "$ROOTFS"
: > "$LOG"

# --- debootstrap -------------------------------------------------------------
log "debootstrap $SUITE (minbase${PKG_LIST:+ + $PKG_LIST}) from $MIRROR: a few minutes"
args=(--variant=minbase --arch="$ARCH" --components=main)
[[ -n $PKG_LIST ]] && args+=(--include="$PKG_LIST")
# Progress: debootstrap's "I: <step> ..." lines, the first of each step (not one per package).
progress() {
    local line step seen=" "
    while IFS= read -r line; do
        if [[ ${KINDLING_IMAGE_VERBOSE:-0} == 1 ]]; then
            printf '%s\n' "$line" >&2
        elif [[ $line == "I: "* ]]; then
            step=${line#I: }; step=${step%% *}
            if [[ $seen != *" $step "* ]]; then
                seen+="$step "
                line=${line#I: }
                log "${line%...}"
            fi
        elif [[ $line == "E: "* || $line == "W: "* ]]; then
            printf '[image] %s\n' "$line" >&2
        fi
    done
}
set +e
debootstrap "${args[@]}" "$SUITE" "$ROOTFS" "$MIRROR" 2>&1 | tee -a "$LOG" | progress
rc=${PIPESTATUS[0]}
set -e
if ((rc != 0)); then
    echo "[image] debootstrap failed (exit $rc); last lines of $LOG:" >&2
    tail -n 30 "$LOG" >&2
    exit "$rc"
fi
unmount_below "$ROOTFS"
if awk -v top="$ROOTFS" 'index($2, top "/") == 1 { found = 1 } END { exit !found }' /proc/mounts; then
    die "file systems still mounted below $ROOTFS"
fi

# --- trim and configure --------------------------------------------------------
log "configuring the tree"
echo "$HOSTNAME_IN_IMAGE" > "$ROOTFS/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
    "$HOSTNAME_IN_IMAGE" > "$ROOTFS/etc/hosts"
# apt's downloads and package lists: fetched again by an `apt-get update` in the guest if ever needed
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin \
       "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/*
mkdir -p "$ROOTFS/var/lib/apt/lists/partial" "$ROOTFS/var/cache/apt/archives/partial" "$ROOTFS/run"
for p in "${pkgs[@]}"; do
    chroot "$ROOTFS" dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' ||
        die "package $p is not installed in the tree"
done

# --- ext4 image ----------------------------------------------------------------
used_kib=$(du -sk --one-file-system "$ROOTFS" | cut -f1)
inodes=$(find "$ROOTFS" -xdev | wc -l)
if [[ -n $SIZE ]]; then
    size_mib=$SIZE
else
    # room for the file system's own metadata (inode tables, journal) and for the guest to write in
    size_mib=$(( (used_kib * 5 / 4 + 1023) / 1024 + 64 ))
fi
log "ext4 image: ${size_mib} MiB for $((used_kib / 1024)) MiB in $inodes files"
IMG_TMP="$WORK/image.ext4"
# 4 KiB blocks (mke2fs picks 1 KiB for small file systems: slower and more metadata); an
# inode per 8 KiB leaves room for many more files than the tree has
mke2fs -q -F -t ext4 -d "$ROOTFS" -L "$LABEL" -b 4096 -i 8192 -m 0 "$IMG_TMP" "${size_mib}M" >> "$LOG" 2>&1 || {
    echo "[image] mke2fs failed; last lines of $LOG:" >&2
    tail -n 20 "$LOG" >&2
    [[ -n $SIZE ]] && echo "[image] the tree uses $((used_kib / 1024)) MiB: is --size $SIZE too small?" >&2
    exit 1
}
e2fsck -fn "$IMG_TMP" >> "$LOG" 2>&1 || die "e2fsck found errors in the new image (see $LOG)"
mv -f "$IMG_TMP" "$IMAGE"
log "built: $IMAGE"
deliver
