#!/usr/bin/env bash
# Builds the ext4 disk image of the page-cache scenarios, without root (mke2fs -d): /data, of
# 256 MiB of random bytes (random, so that nothing along the way can make it sparse or compress
# it), and /hot, 4 MiB, in a 320 MiB image. The guest's /init (ebb.scenario=page-cache) mounts
# it, reads /data into its page cache and drops the cache again; ebb.scenario=idle-reclaim reads
# /hot often and /data once, then leaves them in its cache.
#
# Output: ${EBB_CACHE:-~/.cache/ebb}/page-cache-image/<key>/ext4.img, <key> hashing this script;
# stdout has exactly one line, IMAGE=<path>. Built once, then reused.
set -euo pipefail
PROG=build-page-cache-image
DATA_MIB=256
HOT_MIB=4
IMAGE_MIB=320
die() { echo "$PROG: error: $*" >&2; exit 1; }

command -v mke2fs >/dev/null 2>&1 || PATH=$PATH:/sbin:/usr/sbin
command -v mke2fs >/dev/null 2>&1 || "$(dirname "$0")/../scripts/install-host-packages" e2fsprogs >&2 ||
    die "mke2fs (e2fsprogs) is missing and could not be installed"

key=$(sha256sum "$0" | cut -c1-16)
out=${EBB_CACHE:-${HOME:?HOME is not set}/.cache/ebb}/page-cache-image/$key
if [ ! -s "$out/ext4.img" ]; then
    mkdir -p "$out"
    work=$(mktemp -d "$out/.build.XXXXXX")
    trap 'rm -rf -- "$work"' EXIT
    mkdir "$work/root"
    head -c "$((DATA_MIB << 20))" /dev/urandom >"$work/root/data"
    head -c "$((HOT_MIB << 20))" /dev/urandom >"$work/root/hot"
    # root_owner: the files belong to root in the guest whoever builds the image.
    mke2fs -q -t ext4 -L ebb-data -E root_owner=0:0 -d "$work/root" "$work/ext4.img" "${IMAGE_MIB}M" >&2 ||
        die "mke2fs failed"
    mv -- "$work/ext4.img" "$out/ext4.img"
    echo "$PROG: built $out/ext4.img (${IMAGE_MIB} MiB, /data ${DATA_MIB} MiB, /hot ${HOT_MIB} MiB)" >&2
fi
echo "IMAGE=$out/ext4.img"
