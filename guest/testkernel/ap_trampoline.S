/*
 * The APs' real-mode start, copied by smp.c to a free page below 1 MiB whose
 * number is the SIPI vector. It runs at CS = page >> 4, IP = 0, so it only
 * uses offsets relative to its own start; everything after the switch to
 * protected mode is ordinary kernel code at its link address (ap_start32).
 * It lives in a data section: it is copied, never executed in place.
 */
#include "layout.h"

	.section .rodata.ap_trampoline, "a"
	.code16
	.p2align 4
	.globl	ap_trampoline_start
ap_trampoline_start:
	cli
	cld
	movw	%cs, %ax
	movw	%ax, %ds
	/* 32-bit form, so the full 32-bit GDT base is loaded. */
	lgdtl	ap_gdt_ptr - ap_trampoline_start
	movl	%cr0, %eax
	orl	$CR0_PE, %eax
	movl	%eax, %cr0
	ljmpl	$SEL_KERNEL_CODE32, $ap_start32

	.p2align 2
ap_gdt_ptr:
	.word	GDT_ENTRIES * 8 - 1
	.long	gdt
	.globl	ap_trampoline_end
ap_trampoline_end:

	.code64
	.section .note.GNU-stack, "", @progbits
