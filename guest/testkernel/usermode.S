/*
 * CPL3 support, the assembly half (usermode.c has the tables):
 *   user_call(rip, rsp, a0, a1, a2) enters ring 3 with iretq at rip, with
 *   a0/a1/a2 in rdi/rsi/rdx; the user code ends with ud2, whose #UD handler
 *   (usermode.c) rewrites its exception frame so that its iretq lands on
 *   user_return, back on the kernel stack user_call left; user_call then
 *   returns the user's rdi.
 * The user code itself lives in .user.text, the only kernel code mapped
 * with the user bit.
 */
#include "layout.h"

#define RFLAGS_RESERVED 0x2     /* bit 1 is always set; IF stays 0: no interrupts are used */

	.code64
	.text

/* uint64_t user_call(uint64_t rip, uint64_t rsp, uint64_t a0, uint64_t a1, uint64_t a2) */
	.globl	user_call
user_call:
	pushq	%rbx
	pushq	%rbp
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, user_kernel_rsp(%rip)
	pushq	$(SEL_USER_DATA | 3)	/* ss */
	pushq	%rsi			/* rsp */
	pushq	$RFLAGS_RESERVED	/* rflags */
	pushq	$(SEL_USER_CODE64 | 3)	/* cs */
	pushq	%rdi			/* rip */
	movq	%rdx, %rdi
	movq	%rcx, %rsi
	movq	%r8, %rdx
	/* Nothing of the kernel's is left in the other registers. */
	xorl	%eax, %eax
	xorl	%ebx, %ebx
	xorl	%ecx, %ecx
	xorl	%ebp, %ebp
	xorl	%r8d, %r8d
	xorl	%r9d, %r9d
	xorl	%r10d, %r10d
	xorl	%r11d, %r11d
	xorl	%r12d, %r12d
	xorl	%r13d, %r13d
	xorl	%r14d, %r14d
	xorl	%r15d, %r15d
	iretq

/* Reached by iretq from the #UD handler: RSP = user_kernel_rsp, RAX = the user's rdi. */
	.globl	user_return
user_return:
	/* The return to CPL3 nulled DS and ES; put the kernel's back. */
	movl	$SEL_KERNEL_DATA, %ecx
	movl	%ecx, %ds
	movl	%ecx, %es
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbp
	popq	%rbx
	ret

	.bss
	.p2align 3
	.globl	user_kernel_rsp
user_kernel_rsp:
	.quad	0

/*
 * CPL3 code. user_touch(rdi = start, rsi = end, rdx = stride): write the
 * address into the first 8 bytes of every stride-sized step of [start, end),
 * then ud2 back to the kernel with rdi = where it stopped.
 */
	.section .user.text, "ax"
	.globl	user_touch
user_touch:
	cmpq	%rsi, %rdi
	jae	2f
1:	movq	%rdi, (%rdi)
	addq	%rdx, %rdi
	cmpq	%rsi, %rdi
	jb	1b
2:	ud2

/* The CPL3 stack: user_touch does not use it, but RSP points at mapped user memory. */
	.section .user.stack, "aw"
	.p2align 12
	.globl	user_stack
user_stack:
	.skip	4096
	.globl	user_stack_top
user_stack_top:

	.section .note.GNU-stack, "", @progbits
