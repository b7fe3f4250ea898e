/*
 * 64-bit entry points: the Linux 64-bit boot protocol entry (image offset
 * 0x200), the continuation of the 32-bit entries, and the APs' 64-bit start.
 */
#include "layout.h"

	.code64

/*
 * Linux 64-bit boot protocol: long mode, the loader's identity-mapped page
 * tables, interrupts off, RSI = boot_params. We trust none of the loader's
 * GDT, stack or page tables beyond the first instructions.
 */
	.section .text.head64, "ax"
	.globl	linux_start64
linux_start64:
	cli
	cld
	movq	%rsi, %rbx
	leaq	boot_stack_top(%rip), %rsp
	lgdt	gdt_ptr(%rip)
	/* Reload CS from our GDT with a far return. */
	pushq	$SEL_KERNEL_CODE64
	leaq	1f(%rip), %rax
	pushq	%rax
	lretq
1:	movl	$SEL_KERNEL_DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	xorl	%eax, %eax
	movl	%eax, %fs
	movl	%eax, %gs

	/* Clear .bss (not part of the bzImage payload). */
	leaq	__bss_start(%rip), %rdi
	leaq	__bss_end(%rip), %rcx
	subq	%rdi, %rcx
	shrq	$3, %rcx
	xorl	%eax, %eax
	rep stosq

	/* Switch to our static identity map (the APs need it to be ours). */
	leaq	pml4(%rip), %rax
	movq	%rax, %cr3

	movl	$BOOT_LINUX64, %edi
	movq	%rbx, %rsi
	jmp	kernel_start64

	.text

/* From entry32.S: EBP = boot path, EBX = boot info pointer. */
	.globl	long_start64_from32
long_start64_from32:
	movl	$SEL_KERNEL_DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%ebp, %edi
	movl	%ebx, %esi		/* zero-extends into %rsi */

/* EDI = boot path, RSI = boot info pointer. */
kernel_start64:
	leaq	boot_stack_top(%rip), %rsp
	xorl	%ebp, %ebp
	call	kmain
2:	cli
	hlt
	jmp	2b

/*
 * APs: take the next stack slot with one atomic add (several APs may run
 * here at once), load the shared IDT and call ap_main(slot).
 */
	.globl	ap_start64
ap_start64:
	movl	$SEL_KERNEL_DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	xorl	%eax, %eax
	movl	%eax, %fs
	movl	%eax, %gs
	movl	$1, %eax
	lock xaddl %eax, ap_slots_taken(%rip)
	cmpl	$(MAX_CPUS - 1), %eax
	jae	3f			/* more APs than stacks: park it */
	movl	%eax, %edi
	leal	1(%eax), %ecx
	imull	$AP_STACK_SIZE, %ecx
	leaq	ap_stacks(%rip), %rsp
	addq	%rcx, %rsp
	lidt	idt_ptr(%rip)
	xorl	%ebp, %ebp
	call	ap_main
3:	cli
	hlt
	jmp	3b

/* Stacks are not cleared (they live outside .bss), which saves boot time. */
	.section .stack, "aw", @nobits
	.p2align 4
boot_stack:
	.skip	BOOT_STACK_SIZE
	.globl	boot_stack_top
boot_stack_top:
	.p2align 4
	.globl	ap_stacks
ap_stacks:
	.skip	AP_STACK_SIZE * (MAX_CPUS - 1)

	.section .note.GNU-stack, "", @progbits
