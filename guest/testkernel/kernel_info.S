/*
 * struct kernel_info (boot protocol 2.15): the bzImage header's
 * kernel_info_offset points here (mkbzimage.py finds the symbol). We declare
 * no variable-length data and accept no setup_data types.
 */
	.section .rodata.kernel_info, "a"
	.p2align 2
	.globl	kernel_info
kernel_info:
	.ascii	"LToP"				/* header */
	.long	kernel_info_var_len_data - kernel_info	/* size of the fixed part */
	.long	kernel_info_end - kernel_info		/* size including variable data */
	.long	0				/* setup_type_max */
kernel_info_var_len_data:
kernel_info_end:

	.section .note.GNU-stack, "", @progbits
