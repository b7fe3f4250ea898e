#!/usr/bin/env bash
# Builds Ebb's test kernel from guest/testkernel/ into guest/build/:
#   ebb-test-kernel.elf      ELF64 with the Xen PVH note (PVH boot)
#   ebb-test-kernel.bzImage  the same kernel as a Linux bzImage (64-bit boot protocol)
# Skips the build when both outputs are newer than every source. Prints the output paths.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/testkernel"
out="$here/build"
obj="$out/obj"
elf="$out/ebb-test-kernel.elf"
bzimage="$out/ebb-test-kernel.bzImage"
CC="${CC:-gcc}"
LD="${LD:-ld}"
OBJDUMP="${OBJDUMP:-objdump}"
PYTHON="${PYTHON:-python3}"

# Code at CPL0 is emulated instruction by instruction on kvm_pvm hosts, and some
# instructions stop the vCPU there (see docs/hosts.md): no SSE/x87/popcnt/lzcnt/BMI,
# no red zone (exception frames), no PIC, fixed link address.
CFLAGS=(
	-std=gnu11 -O2 -Wall -Wextra
	-ffreestanding -fno-pic -fno-pie -fno-stack-protector -fcf-protection=none
	-fno-asynchronous-unwind-tables -fno-tree-loop-distribute-patterns -fno-common
	-march=x86-64 -mcmodel=small -mno-red-zone -mgeneral-regs-only
	-mno-sse -mno-mmx -mno-80387 -mno-popcnt -mno-lzcnt -mno-bmi -mno-bmi2
	-nostdlib
)
ASFLAGS=(-fno-pic -fno-pie -D__ASSEMBLY__)

shopt -s nullglob
c_sources=("$src"/*.c)
asm_sources=("$src"/*.S)
# "$src" itself too: its mtime changes when a file is added or removed.
inputs=("$src" "${c_sources[@]}" "${asm_sources[@]}" "$src"/*.h "$src"/*.inc "$src/linker.ld" "$src/mkbzimage.py" "${BASH_SOURCE[0]}")

up_to_date() {
	[[ -f "$elf" && -f "$bzimage" ]] || return 1
	local f
	for f in "${inputs[@]}"; do
		[[ "$f" -nt "$elf" || "$f" -nt "$bzimage" ]] && return 1
	done
	return 0
}

if ! up_to_date; then
	trap 'rm -f "$elf.tmp" "$bzimage.tmp"' EXIT
	mkdir -p "$obj"
	rm -f "$obj"/*.o
	objects=()
	for f in "${c_sources[@]}"; do
		o="$obj/$(basename "${f%.c}").o"
		"$CC" "${CFLAGS[@]}" -c "$f" -o "$o"
		objects+=("$o")
	done
	for f in "${asm_sources[@]}"; do
		o="$obj/$(basename "${f%.S}")_S.o"
		"$CC" "${ASFLAGS[@]}" -c "$f" -o "$o"
		objects+=("$o")
	done
	"$LD" -nostdlib -static --no-warn-rwx-segments -z max-page-size=0x1000 --build-id=none \
		-T "$src/linker.ld" -o "$elf.tmp" "${objects[@]}"

	# Refuse instructions that stop or misbehave at CPL0 on kvm_pvm hosts. int3 may
	# only appear in the int3 scenario (it is that scenario's point).
	bad="$("$OBJDUMP" -d --no-show-raw-insn "$elf.tmp" | awk -F'\t' '
		/^[0-9a-f]+ <.*>:$/ { fn = $0; next }
		NF >= 2 {
			insn = $2
			if (insn ~ /^(popcnt|lzcnt|xsave|xrstor|xgetbv|rdtscp|cmpxchg16b|crc32|andn|pdep|pext|invpcid|clac|stac|aes|pclmul|sha1|sha256|clwb)/ ||
			    insn ~ /^f(ld|st|add|sub|mul|div|ild|ist|init|ninit|nst|comp?|ucom|chs|abs|sqrt|xch)/ ||
			    insn ~ /%[xyz]mm/ || insn ~ /^int +\$/ ||
			    (insn ~ /^int3/ && fn !~ /<int3[>.]/))
				print fn " " insn
		}')"
	if [[ -n "$bad" ]]; then
		echo "build-test-kernel: forbidden instructions in the kernel:" >&2
		echo "$bad" >&2
		exit 1
	fi

	"$PYTHON" "$src/mkbzimage.py" "$elf.tmp" "$bzimage.tmp"
	mv "$elf.tmp" "$elf"
	mv "$bzimage.tmp" "$bzimage"
fi

echo "$elf"
echo "$bzimage"
