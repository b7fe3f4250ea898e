#!/usr/bin/env bash
# Builds a small Linux kernel for Ebb from Debian's unmodified linux-source-6.1:
# `make tinyconfig`, then guest/linux/ebb-small.config merged over it, then
# `make vmlinux`. The result is an uncompressed ELF64 with the PVH entry note,
# for Ebb's PVH boot. See guest/linux/README.md.
#
# Usage: guest/build-linux-kernel.sh [--qemu-copy]
#
#   --qemu-copy  also write vmlinux.qemu-int3-patched next to vmlinux: a copy
#                whose int3 self-test instruction is replaced, for booting
#                under QEMU+KVM on kvm_pvm hosts, which stop on int3 at CPL0.
#                Only for comparing with QEMU; Ebb boots the unmodified vmlinux.
#
# Output: ${EBB_CACHE:-$HOME/.cache/ebb}/linux-small/<key>/vmlinux, where <key>
# hashes the linux-source-6.1 package version, the config fragment, this
# script's build recipe and the compiler version. A second run with the same
# key builds nothing. On success stdout has exactly one line, VMLINUX=<path>
# (plus VMLINUX_QEMU=<path> with --qemu-copy); progress goes to stderr.
# The cache dir also keeps config (the final .config), System.map and build.log.
#
# Environment:
#   EBB_CACHE            cache root (default $HOME/.cache/ebb)
#   EBB_KEEP_LINUX_SRC   1: keep the unpacked, built source tree (~2 GB) in the
#                        cache dir instead of deleting it after the build
set -euo pipefail
shopt -s inherit_errexit

PROG=build-linux-kernel
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
FRAGMENT=$SCRIPT_DIR/linux/ebb-small.config
SRC_PKG=linux-source-6.1
SRC_TARBALL=/usr/src/linux-source-6.1.tar.xz
CACHE_ROOT=${EBB_CACHE:-${HOME:?HOME is not set}/.cache/ebb}/linux-small
KARCH=x86_64

QEMU_COPY=0
for arg in "$@"; do
    case $arg in
        --qemu-copy) QEMU_COPY=1 ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "$PROG: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

say() { echo "$PROG: $*" >&2; }
die() { echo "$PROG: error: $*" >&2; exit 1; }

# --- packages -------------------------------------------------------------------
# shellcheck source-path=SCRIPTDIR
source "$SCRIPT_DIR/lib/as-root.sh"

apt_install() {
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/$PROG.apt.XXXXXX")
    say "installing $*"
    if ! as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >"$log" 2>&1; then
        # Most likely stale package lists: refresh them once and retry.
        if ! { as_root apt-get update -qq &&
            as_root env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq --no-install-recommends "$@"; } >>"$log" 2>&1; then
            tail -n 30 "$log" | sed 's/^/  | /' >&2
            rm -f -- "$log"
            die "apt-get install $* failed"
        fi
    fi
    rm -f -- "$log"
}

# Every tool the build uses, as "test:package". A test is a command name or,
# with a leading /, a file that the package provides.
REQUIREMENTS=(
    gcc:gcc make:make ld:binutils nm:binutils readelf:binutils objcopy:binutils
    bc:bc flex:flex bison:bison perl:perl xz:xz-utils tar:tar flock:util-linux
    sha256sum:coreutils
    /usr/include/gelf.h:libelf-dev /usr/include/openssl/opensslv.h:libssl-dev
    "$SRC_TARBALL:$SRC_PKG"
)

ensure_packages() {
    local req test pkg missing=()
    for req in "${REQUIREMENTS[@]}"; do
        test=${req%:*} pkg=${req##*:}
        if [[ $test == /* ]]; then
            [ -e "$test" ] && continue
        else
            command -v "$test" >/dev/null 2>&1 && continue
        fi
        [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get"
    apt_install "${missing[@]}"
    [ -f "$SRC_TARBALL" ] || die "$SRC_PKG is installed but $SRC_TARBALL is missing"
}

# --- the build recipe -------------------------------------------------------------
# The text of these functions (declare -f) is part of the cache key: changing
# how the kernel is built makes a new key; changing messages elsewhere does not.
# They run as "if ! f", where set -e does not apply: every failure must return.

kmake() {
    make -C "$1" ARCH="$KARCH" KBUILD_BUILD_USER=ebb KBUILD_BUILD_HOST=ebb \
        KBUILD_BUILD_TIMESTAMP=@0 "${@:2}"
}

unpack_source() {
    local src=$1
    mkdir -p -- "$src" || return
    tar -xf "$SRC_TARBALL" -C "$src" --strip-components=1
}

configure_kernel() {
    local src=$1
    kmake "$src" tinyconfig || return
    (cd -- "$src" && KCONFIG_CONFIG=.config scripts/kconfig/merge_config.sh -m .config "$FRAGMENT") || return
    kmake "$src" olddefconfig
}

build_vmlinux() {
    local src=$1
    kmake "$src" -j"$(nproc)" vmlinux
}

recipe() {
    declare -f kmake unpack_source configure_kernel build_vmlinux
    echo "KARCH=$KARCH"
}

# Every line of the fragment must hold in the final .config: "CONFIG_X=v" word for
# word, "# CONFIG_X is not set" as not set or absent (an option whose dependencies
# are off is absent). Every option must also exist in this source's Kconfig, so a
# misspelt or renamed option fails here instead of silently doing nothing.
check_config() {
    local src=$1 config=$1/.config known line sym want got bad=()
    known=$(find "$src" \( -path "$src/arch/*" ! -path "$src/arch/x86" ! -path "$src/arch/x86/*" ! -path "$src/arch/Kconfig" \) -prune \
        -o -path "$src/scripts/kconfig/tests" -prune -o -name 'Kconfig*' -type f -print0 |
        xargs -0 sed -n 's/^[[:space:]]*\(menu\)\{0,1\}config[[:space:]]\{1,\}\([A-Za-z0-9_]\{1,\}\).*/\2/p' |
        sort -u)
    while IFS= read -r line; do
        if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
            sym=${BASH_REMATCH[1]} want=${BASH_REMATCH[2]}
        elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
            sym=${BASH_REMATCH[1]} want=n
        else
            continue
        fi
        if ! grep -qx -- "${sym#CONFIG_}" <<<"$known"; then
            bad+=("$sym: not an option of this kernel's Kconfig")
            continue
        fi
        got=$(sed -n "s/^$sym=//p" "$config")
        if [ "$want" = n ]; then
            [ -z "$got" ] || [ "$got" = n ] || bad+=("$sym: wanted not set, got $got")
        else
            [ "$got" = "$want" ] || bad+=("$sym: wanted $want, got ${got:-not set}")
        fi
    done <"$FRAGMENT"
    if [ "${#bad[@]}" -gt 0 ]; then
        echo "$PROG: error: the final .config does not have these options of $FRAGMENT as requested:" >&2
        printf '  %s\n' "${bad[@]}" >&2
        echo "  (an option's dependencies: grep the config file, or rerun with EBB_KEEP_LINUX_SRC=1" >&2
        echo "   and search it with / in: make -C $src ARCH=$KARCH menuconfig)" >&2
        return 1
    fi
}

# --- outputs ------------------------------------------------------------------
# Checks that $1 is an x86-64 ELF64 with the Xen PVH entry note
# (XEN_ELFNOTE_PHYS32_ENTRY, type 0x12) and prints the entry's physical address.
pvh_entry() {
    local file=$1 header desc addr='' b
    header=$(LC_ALL=C readelf -hW -- "$file" 2>/dev/null) || die "$file is not an ELF file"
    grep -q 'Class:[[:space:]]*ELF64' <<<"$header" || die "$file is not an ELF64"
    grep -q 'Machine:[[:space:]]*Advanced Micro Devices X86-64' <<<"$header" || die "$file is not x86-64"
    # readelf -nW puts "description data: .." on the note's line (older
    # binutils: on the next line).
    desc=$(LC_ALL=C readelf -nW -- "$file" |
        awk '/^ *Xen / && /\(0x00000012\)/ { want = 1 }
             want && !done && /description data:/ { sub(/.*description data: */, ""); print; done = 1 }
             !/^ *Xen / { want = 0 }')
    [ -n "$desc" ] || die "$file has no Xen PVH note (type 0x12, XEN_ELFNOTE_PHYS32_ENTRY)"
    # Little-endian physical address (4 or 8 bytes).
    for b in $desc; do addr=$b$addr; done
    printf '0x%x\n' "$((16#$addr))"
}

# File offset of virtual address $2 in ELF $1 (0 if no LOAD segment holds it).
# Bash arithmetic is signed 64-bit: kernel addresses are negative but compare
# consistently, as no segment straddles the sign boundary.
va_to_offset() {
    local va=$(($2)) type off vaddr filesz _
    while read -r type off vaddr _ filesz _; do
        [ "$type" = LOAD ] || continue
        if ((vaddr <= va && va < vaddr + filesz)); then
            echo $((va - vaddr + off))
            return 0
        fi
    done < <(LC_ALL=C readelf -lW -- "$1")
    echo 0
}

# Writes $1.qemu-int3-patched: $1 with the int3 of int3_selftest() replaced.
# QEMU+KVM on kvm_pvm hosts stops the vCPU on that int3 (emulation failure);
# Ebb injects #BP instead and boots $1 itself.
#
# int3_selftest() (arch/x86/kernel/alternative.c) runs "int3; nop; nop; nop; nop"
# at the local label int3_selftest_ip, with &val in %rdi, and expects its #BP
# notifier to emulate "call int3_magic", which sets val = 1 (else BUG). The patch
# writes exactly that call over the five bytes (e8 + rel32).
make_qemu_copy() {
    local vmlinux=$1 out=$1.qemu-int3-patched ip magic off bytes rel tmp
    # (awk reads to the end: an early exit would kill nm with SIGPIPE.)
    ip=$(nm -- "$vmlinux" | awk '$3 == "int3_selftest_ip" && !n++ { print $1 }')
    magic=$(nm -- "$vmlinux" | awk '$3 == "int3_magic" && !n++ { print $1 }')
    if [ -z "$ip" ] || [ -z "$magic" ]; then
        die "int3_selftest_ip or int3_magic not found in $vmlinux"
    fi
    off=$(va_to_offset "$vmlinux" "0x$ip")
    [ "$off" -gt 0 ] || die "int3_selftest_ip (0x$ip) is in no LOAD segment of $vmlinux"
    bytes=$(od -An -tx1 -j "$off" -N 5 -- "$vmlinux" | tr -d ' \n')
    [ "$bytes" = cc90909090 ] || die "expected int3; nop x4 at int3_selftest_ip (0x$ip), found $bytes"
    rel=$(( (0x$magic - (0x$ip + 5)) & 0xffffffff ))
    tmp=$out.tmp.$$
    cp -- "$vmlinux" "$tmp"
    # shellcheck disable=SC2059 # the format is the escaped bytes
    printf "$(printf '\\x%02x' 0xe8 $((rel & 0xff)) $(((rel >> 8) & 0xff)) \
        $(((rel >> 16) & 0xff)) $(((rel >> 24) & 0xff)))" |
        dd of="$tmp" bs=1 seek="$off" conv=notrunc status=none
    mv -f -- "$tmp" "$out"
    say "qemu copy: int3_selftest_ip 0x$ip (file offset 0x$(printf %x "$off")): cc 90 90 90 90 -> call int3_magic (0x$magic)"
}

print_result() {
    local copy=$OUT/vmlinux.qemu-int3-patched
    if [ "$QEMU_COPY" -eq 1 ] && { [ ! -s "$copy" ] || [ ! "$copy" -nt "$OUT/vmlinux" ]; }; then
        make_qemu_copy "$OUT/vmlinux"
    fi
    echo "VMLINUX=$OUT/vmlinux"
    if [ "$QEMU_COPY" -eq 1 ]; then
        echo "VMLINUX_QEMU=$copy"
    fi
}

# --- main ---------------------------------------------------------------------
[ -f "$FRAGMENT" ] || die "missing $FRAGMENT"
ensure_packages
SRC_VERSION=$(dpkg-query -W -f='${Version}' "$SRC_PKG")
KEY=$({
    echo "package $SRC_PKG $SRC_VERSION"
    echo "compiler $(gcc --version | sed -n 1p)"
    echo "--- fragment"
    cat -- "$FRAGMENT"
    echo "--- recipe"
    recipe
} | sha256sum | cut -c1-16)
OUT=$CACHE_ROOT/$KEY
STAMP="$SRC_PKG $SRC_VERSION $KEY"

is_complete() { [ -s "$OUT/vmlinux" ] && [ "$(cat -- "$OUT/.complete" 2>/dev/null)" = "$STAMP" ]; }

if is_complete; then
    print_result
    exit 0
fi

# One build at a time (for any key: two would only compete for the cores).
mkdir -p -- "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.lock"
if ! flock -n 9; then
    say "waiting for another build (lock $CACHE_ROOT/.lock)"
    flock 9
fi
if is_complete; then
    print_result
    exit 0
fi

START=$SECONDS
rm -rf -- "$OUT"
mkdir -p -- "$OUT"
SRC=$OUT/src
LOG=$OUT/build.log
# The unpacked tree is ~2 GB: don't leave it behind, even when the build fails
# (build.log and config stay).
cleanup() { [ "${EBB_KEEP_LINUX_SRC:-0}" = 1 ] || rm -rf -- "$SRC"; }
trap cleanup EXIT
: >"$LOG"
say "building into $OUT ($SRC_PKG $SRC_VERSION; log: $LOG)"

# Run a step with its output in the log; on failure show the log's tail.
step() {
    local what=$1
    shift
    say "$what"
    echo "=== $what" >>"$LOG"
    if ! "$@" >>"$LOG" 2>&1; then
        echo "$PROG: error: $what failed; last lines of $LOG:" >&2
        tail -n 40 "$LOG" | sed 's/^/  | /' >&2
        exit 1
    fi
}

step "unpacking $SRC_TARBALL" unpack_source "$SRC"
step "make tinyconfig + $(basename -- "$FRAGMENT")" configure_kernel "$SRC"
cp -- "$SRC/.config" "$OUT/config"
check_config "$SRC" || die "fix $FRAGMENT (the final .config is $OUT/config)"
step "make -j$(nproc) vmlinux" build_vmlinux "$SRC"

entry=$(pvh_entry "$SRC/vmlinux")
release=$(cat -- "$SRC/include/config/kernel.release")
cp -- "$SRC/vmlinux" "$OUT/vmlinux.tmp"
cp -- "$SRC/System.map" "$OUT/System.map"
mv -f -- "$OUT/vmlinux.tmp" "$OUT/vmlinux"
cleanup
echo "$STAMP" >"$OUT/.complete"
say "built Linux $release vmlinux ($(du -h --apparent-size -- "$OUT/vmlinux" | cut -f1), PVH entry $entry) in $((SECONDS - START)) s"
print_result
