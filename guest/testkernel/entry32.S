/*
 * Everything that runs in 32-bit protected mode: the PVH entry (and its ELF
 * note), the Linux 32-bit boot protocol entry at the load address, and the
 * APs' step from the real-mode trampoline into long mode.
 */
#include "layout.h"
#include "longmode.inc"

/*
 * The Xen PVH ELF note: name "Xen", type XEN_ELFNOTE_PHYS32_ENTRY (18),
 * desc = 32-bit physical address of the PVH entry. VMMs (QEMU, Ebb) look
 * for it in the PT_NOTE segment to know the image speaks PVH.
 */
	.section .note.Xen, "a", @note
	.p2align 2
	.long	4			/* namesz: "Xen\0" */
	.long	4			/* descsz */
	.long	18			/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz	"Xen"
	.p2align 2
	.long	pvh_start32
	.p2align 2

	.code32

/*
 * Offset 0 of the image (= code32_start of the bzImage header): the Linux
 * 32-bit boot protocol entry, ESI = boot_params, paging off. Kept tiny: the
 * 64-bit entry must sit at offset 0x200 (linker.ld enforces it).
 */
	.section .text.head32, "ax"
	.globl	linux_start32
linux_start32:
	cli
	movl	%esi, %ebx
	movl	$BOOT_LINUX32, %ebp
	jmp	start32_common

	.text

/* PVH entry: 32-bit protected mode, paging off, EBX = hvm_start_info. */
	.globl	pvh_start32
pvh_start32:
	cli
	movl	$BOOT_PVH, %ebp

/* In: EBX = boot info pointer, EBP = boot path. Both survive to kmain(). */
start32_common:
	cld
	/* Our own GDT: the loader's may be gone once we reuse low memory. */
	lgdt	gdt_ptr
	ljmp	$SEL_KERNEL_CODE32, $1f
1:	movl	$SEL_KERNEL_DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	xorl	%eax, %eax
	movl	%eax, %fs
	movl	%eax, %gs

	/* .bss is not part of a bzImage and an ELF loader may not clear it. */
	movl	$__bss_start, %edi
	movl	$__bss_end, %ecx
	subl	%edi, %ecx
	shrl	$2, %ecx
	xorl	%eax, %eax
	rep stosl

	ENTER_LONG_MODE long_start64_from32

/*
 * APs arrive here from the real-mode trampoline with our GDT loaded and
 * CS = SEL_KERNEL_CODE32; no stack yet (ap_start64 assigns one).
 */
	.globl	ap_start32
ap_start32:
	movl	$SEL_KERNEL_DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	ENTER_LONG_MODE ap_start64

	.section .note.GNU-stack, "", @progbits
