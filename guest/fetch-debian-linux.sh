#!/usr/bin/env bash
# Fetch Debian's stock cloud kernel and build a small busybox initramfs for Ebb.
#
# Usage: guest/fetch-debian-linux.sh [--force]
#
# Outputs (cached, rebuilt only when missing or when the inputs change):
#   $EBB_CACHE/debian-linux/<kernel-version>/vmlinuz            bzImage, as shipped
#   $EBB_CACHE/debian-linux/<kernel-version>/vmlinux            ELF extracted from it
#   $EBB_CACHE/debian-linux/<kernel-version>/initramfs.cpio.gz  busybox + modules + /init + programs
#   $EBB_CACHE/debian-linux/current -> <kernel-version>
# EBB_CACHE defaults to $HOME/.cache/ebb. On success the script prints only
# KEY=path lines on stdout (BZIMAGE, VMLINUX, INITRAMFS, KERNEL_VERSION).
#
# Environment:
#   EBB_CACHE            cache root (default $HOME/.cache/ebb)
#   EBB_KERNEL_PACKAGE   meta package to follow (default linux-image-cloud-amd64)
#   EBB_GUEST_MODULES    modules to put in the initramfs, with dependencies
#                        (default "virtio virtio_ring virtio_mmio virtio_balloon virtio_blk virtio_net ext4")
#   EBB_INITRAMFS_INIT   the initramfs's /init (default guest/initramfs/init)
#   EBB_CACHE_NAME       the folder under $EBB_CACHE (default debian-linux); another kernel
#                        package or init for another purpose (scripts/svm-host) keeps its own
# Every guest/initramfs/*.c is built static into the initramfs's /bin (gcc, glibc's libc.a).
set -euo pipefail
shopt -s inherit_errexit

PROG=fetch-debian-linux
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
INIT_SRC=${EBB_INITRAMFS_INIT:-$SCRIPT_DIR/initramfs/init}
META_PKG=${EBB_KERNEL_PACKAGE:-linux-image-cloud-amd64}
CACHE_ROOT=${EBB_CACHE:-${HOME:?HOME is not set}/.cache/ebb}/${EBB_CACHE_NAME:-debian-linux}
shopt -s nullglob
PROGRAM_SRCS=("$SCRIPT_DIR"/initramfs/*.c)
shopt -u nullglob
read -r -a WANT_MODULES <<<"${EBB_GUEST_MODULES:-virtio virtio_ring virtio_mmio virtio_balloon virtio_blk virtio_net ext4}"
# Bump when the layout or content of the outputs changes, to force a rebuild.
FORMAT=1

FORCE=0
for arg in "$@"; do
    case $arg in
        --force) FORCE=1 ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "$PROG: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

die() { echo "$PROG: error: $*" >&2; exit 1; }
warn() { echo "$PROG: warning: $*" >&2; }

WORK=
LOG=/dev/null
cleanup() { [ -n "$WORK" ] && rm -rf -- "$WORK"; [ -n "${STAGE:-}" ] && rm -rf -- "$STAGE"; true; }
trap cleanup EXIT

# Run a command with its output captured; show the output only if it fails.
run() {
    if ! "$@" >>"$LOG" 2>&1; then
        echo "$PROG: command failed: $*" >&2
        [ -f "$LOG" ] && tail -n 40 "$LOG" | sed 's/^/  | /' >&2
        exit 1
    fi
}

# shellcheck source-path=SCRIPTDIR
source "$SCRIPT_DIR/lib/as-root.sh"

APT_UPDATED=0
apt_update() {
    [ "$APT_UPDATED" -eq 1 ] && return 0
    run as_root apt-get update -qq
    APT_UPDATED=1
}

apt_install() {
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >>"$LOG" 2>&1; then
        apt_update
        run as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
    fi
}

# need_tool <command> <debian package>
need_tool() {
    command -v "$1" >/dev/null 2>&1 && return 0
    apt_install "$2"
    command -v "$1" >/dev/null 2>&1 || die "'$1' still missing after installing $2"
}

# Little-endian unsigned integer of <size> bytes at <offset> in <file>.
le_uint() { od -An -t "u$3" -j "$2" -N "$3" -- "$1" | tr -d ' \n'; }

hex_bytes() { od -An -t x1 -j "${3:-0}" -N "$2" -- "$1" | tr -d ' \n'; }

human() { numfmt --to=iec-i --suffix=B "$1" 2>/dev/null || echo "$1 bytes"; }

# --- 1. which kernel? ---------------------------------------------------------
image_version() {
    apt-cache depends "$META_PKG" 2>/dev/null |
        sed -n 's/^ *|\{0,1\}Depends: <\{0,1\}linux-image-\([0-9][^ >]*\)>\{0,1\}$/\1/p' | head -n 1
}

KVER=$(image_version || true)
if [ -z "$KVER" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    LOG=$(mktemp "${TMPDIR:-/tmp}/$PROG.log.XXXXXX")
    apt_update
    rm -f -- "$LOG"; LOG=/dev/null
    KVER=$(image_version || true)
fi
if [ -z "$KVER" ]; then
    if [ -L "$CACHE_ROOT/current" ] && [ -d "$CACHE_ROOT/current/" ]; then
        KVER=$(basename -- "$(readlink -- "$CACHE_ROOT/current")")
        warn "apt-cache does not know $META_PKG; using cached $KVER"
    else
        die "apt-cache does not know $META_PKG (is this Debian with the main component enabled?)"
    fi
fi
IMAGE_PKG=linux-image-$KVER
OUT=$CACHE_ROOT/$KVER

[ -f "$INIT_SRC" ] || die "missing $INIT_SRC"
STAMP="format=$FORMAT
package=$IMAGE_PKG
init=$(sha256sum <"$INIT_SRC" | cut -d' ' -f1)
programs=$(cat -- "${PROGRAM_SRCS[@]}" /dev/null | sha256sum | cut -d' ' -f1)
modules=${WANT_MODULES[*]}"

print_result() {
    echo "BZIMAGE=$OUT/vmlinuz"
    echo "VMLINUX=$OUT/vmlinux"
    echo "INITRAMFS=$OUT/initramfs.cpio.gz"
    echo "KERNEL_VERSION=$KVER"
}

update_current() {
    [ "$(readlink -- "$CACHE_ROOT/current" 2>/dev/null || true)" = "$KVER" ] && return 0
    ln -sfn -- "$KVER" "$CACHE_ROOT/.current.$$"
    mv -Tf -- "$CACHE_ROOT/.current.$$" "$CACHE_ROOT/current"
}

is_complete() {
    [ "$FORCE" -eq 0 ] &&
        [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/vmlinux" ] && [ -s "$OUT/initramfs.cpio.gz" ] &&
        [ -f "$OUT/.stamp" ] && [ "$(cat -- "$OUT/.stamp")" = "$STAMP" ]
}

mkdir -p -- "$CACHE_ROOT"
if is_complete; then
    update_current
    print_result
    exit 0
fi

# Serialise concurrent builds; re-check once we hold the lock.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE_ROOT/.lock"
    flock 9
    if is_complete; then update_current; print_result; exit 0; fi
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/$PROG.XXXXXX")
LOG=$WORK/log
: >"$LOG"

need_tool dpkg-deb dpkg
need_tool readelf binutils
need_tool objcopy binutils
need_tool cpio cpio
need_tool gzip gzip
[ ${#PROGRAM_SRCS[@]} -eq 0 ] || need_tool gcc gcc

# --- 1. download and unpack ---------------------------------------------------
mkdir -p "$WORK/dl"
# apt drops privileges to _apt for downloads; let it write here.
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then
    chown _apt "$WORK/dl"
fi
download() { (cd "$WORK/dl" && apt-get download -qq "$IMAGE_PKG" busybox-static) >>"$LOG" 2>&1; }
if ! download; then
    # Stale package lists (the pool file may be gone): refresh once and retry.
    apt_update
    download || { tail -n 20 "$LOG" >&2; die "apt-get download $IMAGE_PKG busybox-static failed"; }
fi
kdeb=$(find "$WORK/dl" -maxdepth 1 -name "${IMAGE_PKG}_*.deb" | head -n 1)
bdeb=$(find "$WORK/dl" -maxdepth 1 -name 'busybox-static_*.deb' | head -n 1)
if [ -z "$kdeb" ] || [ -z "$bdeb" ]; then die "downloaded packages not found in $WORK/dl"; fi
run dpkg-deb -x "$kdeb" "$WORK/kernel"
run dpkg-deb -x "$bdeb" "$WORK/busybox"

STAGE=$CACHE_ROOT/.build.$KVER.$$
rm -rf -- "$STAGE"
mkdir -p -- "$STAGE"

# --- 2. vmlinuz -----------------------------------------------------------------
bz=$WORK/kernel/boot/vmlinuz-$KVER
[ -f "$bz" ] || die "$IMAGE_PKG has no /boot/vmlinuz-$KVER"
cp -- "$bz" "$STAGE/vmlinuz"

# --- 3. vmlinux: decompress the bzImage payload -------------------------------
# Boot protocol (Documentation/arch/x86/boot.rst): setup_sects at 0x1f1, "HdrS"
# at 0x202, version at 0x206, payload_offset/payload_length at 0x248/0x24c
# (protocol >= 2.08), relative to the protected-mode code at (setup_sects+1)*512.
extract_vmlinux() {
    local img=$1 out=$2 magic version setup_sects poff plen start payload
    magic=$(dd if="$img" bs=1 skip=$((0x202)) count=4 status=none)
    [ "$magic" = HdrS ] || die "$img: not a bzImage (no HdrS)"
    version=$(le_uint "$img" $((0x206)) 2)
    [ "$version" -ge $((0x208)) ] || die "$img: boot protocol $(printf %#x "$version") has no payload fields"
    setup_sects=$(le_uint "$img" $((0x1f1)) 1)
    [ "$setup_sects" -ne 0 ] || setup_sects=4
    poff=$(le_uint "$img" $((0x248)) 4)
    plen=$(le_uint "$img" $((0x24c)) 4)
    start=$(((setup_sects + 1) * 512 + poff))
    if [ "$plen" -le 4 ] || [ $((start + plen)) -gt "$(stat -c %s -- "$img")" ]; then
        die "$img: payload offset/length out of range ($start+$plen)"
    fi
    payload=$WORK/payload
    dd if="$img" of="$payload" bs=1M iflag=skip_bytes,count_bytes skip="$start" count="$plen" status=none

    # Every format but gzip is followed by the uncompressed size (4 bytes LE,
    # the kernel's size_append); gzip carries it as ISIZE in its own trailer.
    local head expect strip=4 tool pkg
    local -a cmd
    head=$(hex_bytes "$payload" 6)
    expect=$(le_uint "$payload" $((plen - 4)) 4)
    case $head in
        1f8b*)         PAYLOAD_FMT=gzip;  tool=gzip;  pkg=gzip;      cmd=(gzip -dc); strip=0 ;;
        fd377a585a00)  PAYLOAD_FMT=xz;    tool=xz;    pkg=xz-utils;  cmd=(xz -dc --single-stream) ;;
        28b52ffd*)     PAYLOAD_FMT=zstd;  tool=zstd;  pkg=zstd;      cmd=(zstd -dcq) ;;
        02214c18*)     PAYLOAD_FMT=lz4;   tool=lz4;   pkg=lz4;       cmd=(lz4 -dcq) ;;
        425a68*)       PAYLOAD_FMT=bzip2; tool=bzip2; pkg=bzip2;     cmd=(bzip2 -dc) ;;
        5d0000*)       PAYLOAD_FMT=lzma;  tool=xz;    pkg=xz-utils;  cmd=(xz -dc --format=lzma) ;;
        894c5a4f*)     PAYLOAD_FMT=lzo;   tool=lzop;  pkg=lzop;      cmd=(lzop -dc) ;;
        *) die "$img: unknown payload compression (first bytes $head)" ;;
    esac
    need_tool "$tool" "$pkg"
    if ! head -c $((plen - strip)) -- "$payload" | "${cmd[@]}" >"$out" 2>>"$LOG"; then
        tail -n 5 "$LOG" >&2
        die "$img: $PAYLOAD_FMT decompression failed"
    fi
    local got
    got=$(stat -c %s -- "$out")
    [ $((got % 4294967296)) -eq "$expect" ] ||
        die "$img: decompressed $got bytes, the image says $expect"
}
extract_vmlinux "$STAGE/vmlinuz" "$STAGE/vmlinux"

# Must be an ELF64 with the PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY = 18).
[ "$(hex_bytes "$STAGE/vmlinux" 5)" = 7f454c4602 ] ||
    die "vmlinux extracted from $IMAGE_PKG is not an ELF64 (starts $(hex_bytes "$STAGE/vmlinux" 8))"
pvh_desc=$(LC_ALL=C readelf -nW "$STAGE/vmlinux" 2>>"$LOG" |
    awk 'function desc() { sub(/.*description data: */, ""); print; exit }
         $1 == "Xen" && /\(0x00000012\)|PHYS32_ENTRY/ { want = 1; if (/description data:/) desc(); next }
         want && /description data:/ { desc() }
         want { exit }')
[ -n "$pvh_desc" ] ||
    die "vmlinux has no Xen PVH note (XEN_ELFNOTE_PHYS32_ENTRY); Ebb cannot boot it via PVH"
# Note payload is the little-endian physical entry address.
pvh_entry=0x$(echo "$pvh_desc" | awk '{ s = ""; for (i = NF; i >= 1; i--) s = s $i; print s }' | sed 's/^0*\(.\)/\1/')

# --- 4. modules -------------------------------------------------------------------
mroot=$WORK/kernel/lib/modules/$KVER
[ -d "$mroot" ] || mroot=$WORK/kernel/usr/lib/modules/$KVER
[ -d "$mroot" ] || die "$IMAGE_PKG has no lib/modules/$KVER"

declare -A MOD_PATH=() BUILTIN=() DEP_LINE=() SEEN=()
# Module name from a path or name: basename, no .ko*, '-' -> '_' (sets NORM).
norm() { NORM=${1##*/}; NORM=${NORM%%.ko*}; NORM=${NORM//-/_}; }
while IFS= read -r rel; do
    norm "$rel"; MOD_PATH[$NORM]=$rel
done < <(cd "$mroot" && find . -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' | sed 's|^\./||')
if [ -f "$mroot/modules.builtin" ]; then
    while IFS= read -r rel; do norm "$rel"; BUILTIN[$NORM]=1; done <"$mroot/modules.builtin"
fi
# Debian's package does not ship modules.dep (depmod runs at install time);
# use it when present, else read "depends=" from each module's .modinfo.
if [ -f "$mroot/modules.dep" ]; then
    while IFS=: read -r rel deps; do norm "$rel"; DEP_LINE[$NORM]=$deps; done <"$mroot/modules.dep"
fi

mkdir -p "$WORK/mods"
# Decompress (if needed) one module into $WORK/mods/<rel without .xz/.zst/.gz>.
unpack_module() {
    local rel=$1 src=$mroot/$1 dst
    dst=$WORK/mods/${rel%.ko*}.ko
    mkdir -p -- "$(dirname -- "$dst")"
    case $rel in
        *.ko)     cp -- "$src" "$dst" ;;
        *.ko.xz)  need_tool xz xz-utils; xz -dc -- "$src" >"$dst" ;;
        *.ko.zst) need_tool zstd zstd; zstd -dcq -- "$src" >"$dst" ;;
        *.ko.gz)  gzip -dc -- "$src" >"$dst" ;;
    esac
    echo "${rel%.ko*}.ko"
}

# Direct dependencies of a module, one name per line.
module_deps() {
    local name=$1 ko=$2 d
    if [ -n "${DEP_LINE[$name]+x}" ]; then
        for d in ${DEP_LINE[$name]}; do norm "$d"; echo "$NORM"; done
    else
        objcopy -O binary --only-section=.modinfo -- "$WORK/mods/$ko" "$WORK/modinfo" 2>>"$LOG" ||
            die "cannot read .modinfo of $ko"
        tr '\0' '\n' <"$WORK/modinfo" | sed -n 's/^depends=//p' | tr ',' '\n' | sed '/^$/d'
    fi
}

LOAD_ORDER=()   # "name path" lines, dependencies first
BUILTIN_USED=()
visit() {
    local name ko dep deps
    norm "$1"; name=$NORM
    [ -z "${SEEN[$name]+x}" ] || return 0
    SEEN[$name]=1
    if [ -n "${BUILTIN[$name]+x}" ]; then
        BUILTIN_USED+=("$name")
        return 0
    fi
    [ -n "${MOD_PATH[$name]+x}" ] || die "module $name is neither in $IMAGE_PKG nor built in"
    ko=$(unpack_module "${MOD_PATH[$name]}")
    deps=$(module_deps "$name" "$ko")
    for dep in $deps; do visit "$dep"; done
    LOAD_ORDER+=("$name /lib/modules/$KVER/$ko")
}
for m in "${WANT_MODULES[@]}"; do visit "$m"; done

# --- 5. initramfs -------------------------------------------------------------------
root=$WORK/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,mnt,etc/ebb,lib/modules/"$KVER"}
bb=$WORK/busybox/bin/busybox
[ -x "$bb" ] || die "busybox-static has no /bin/busybox"
install -m 0755 -- "$bb" "$root/bin/busybox"
# Applet links, laid out the way busybox itself suggests.
if applets=$("$bb" --list-full 2>>"$LOG") && [ -n "$applets" ]; then
    while IFS= read -r a; do
        [ "$a" = bin/busybox ] && continue
        mkdir -p -- "$root/$(dirname -- "$a")"
        ln -sf /bin/busybox "$root/$a"
    done <<<"$applets"
else
    # Cannot run the guest busybox here: link what /init needs.
    for a in sh cat mount mkdir ls grep awk cut cttyhack setsid insmod poweroff reboot sleep \
        dd rm umount uname sync basename readlink stat tr echo; do
        ln -sf /bin/busybox "$root/bin/$a"
    done
fi
[ -e "$root/bin/sh" ] || ln -sf /bin/busybox "$root/bin/sh"

install -m 0755 -- "$INIT_SRC" "$root/init"
# The project's own guest programs, static: the initramfs has no C library.
for src in "${PROGRAM_SRCS[@]}"; do
    name=$(basename -- "$src" .c)
    run gcc -static -O2 -Wall -Wextra -Werror -o "$root/bin/$name" "$src"
done
: >"$root/etc/ebb/modules"
for entry in "${LOAD_ORDER[@]}"; do
    rel=${entry#* /lib/modules/"$KVER"/}
    mkdir -p -- "$(dirname -- "$root/lib/modules/$KVER/$rel")"
    install -m 0644 -- "$WORK/mods/$rel" "$root/lib/modules/$KVER/$rel"
    echo "$entry" >>"$root/etc/ebb/modules"
done
printf '%s\n' "${BUILTIN_USED[@]}" | sed '/^$/d' >"$root/etc/ebb/builtin-modules"
echo "$KVER" >"$root/etc/ebb/kernel-version"
# A console node lets the kernel give /init its stdio (no devtmpfs yet at
# that point); /init copes without it, and only root may create it.
if [ "$(id -u)" -eq 0 ]; then
    mknod -m 0600 "$root/dev/console" c 5 1
    mknod -m 0666 "$root/dev/null" c 1 3
fi

# Reproducible archive: sorted names, fixed owner and mtime.
find "$root" -exec touch -h -d @0 -- {} +
(cd "$root" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
    cpio -o -H newc --owner=0:0 --reproducible --quiet) | gzip -9 -n >"$STAGE/initramfs.cpio.gz"

# --- 6. verify ------------------------------------------------------------------------
listing=$(gzip -dc -- "$STAGE/initramfs.cpio.gz" | cpio -it --quiet)
for f in init bin/busybox bin/sh etc/ebb/modules; do
    grep -qx -- "$f" <<<"$listing" || die "initramfs lacks $f"
done
for entry in "${LOAD_ORDER[@]}"; do
    f=${entry#* /}
    grep -qx -- "$f" <<<"$listing" || die "initramfs lacks $f"
done

printf '%s\n' "$STAMP" >"$STAGE/.stamp"
rm -rf -- "$OUT"
mv -T -- "$STAGE" "$OUT"
STAGE=
update_current

mods=$(for e in "${LOAD_ORDER[@]}"; do printf '%s ' "${e%% *}"; done)
{
    echo "$PROG: built $KVER in $OUT"
    echo "$PROG:   vmlinuz $(human "$(stat -c %s "$OUT/vmlinuz")"), vmlinux $(human "$(stat -c %s "$OUT/vmlinux")") ($PAYLOAD_FMT payload, PVH entry $pvh_entry), initramfs $(human "$(stat -c %s "$OUT/initramfs.cpio.gz")")"
    echo "$PROG:   modules: ${mods% }${BUILTIN_USED[*]:+; built in: ${BUILTIN_USED[*]}}"
} >&2
print_result
