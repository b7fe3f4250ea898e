/*
 * A static identity map of the first 4 GiB with 2 MiB pages, built at link
 * time: the PVH entry runs without paging and the APs need page tables below
 * 4 GiB before they reach long mode, and building 2048 entries at run time
 * costs ~10k emulated instructions on hosts where CPL0 is emulated.
 * Accessed/dirty bits are preset so the CPU never has to write these tables.
 * No cache attributes are set: under KVM the host decides for MMIO.
 * usermode.c later sets the user bit on some entries and splits the 2 MiB
 * pages that hold the CPL3 code and stack into 4 KiB pages.
 */
#define PTE_PRESENT     0x001
#define PTE_WRITE       0x002
#define PTE_ACCESSED    0x020
#define PTE_DIRTY       0x040
#define PTE_LARGE       0x080
#define TABLE_FLAGS     (PTE_PRESENT | PTE_WRITE | PTE_ACCESSED)
#define LARGE_FLAGS     (PTE_PRESENT | PTE_WRITE | PTE_ACCESSED | PTE_DIRTY | PTE_LARGE)

	.section .data.pagetables, "aw"
	.p2align 12
	.globl	pml4
pml4:
	.quad	pdpt + TABLE_FLAGS
	.fill	511, 8, 0

	.globl	pdpt
pdpt:
	.quad	pd + 0x0000 + TABLE_FLAGS
	.quad	pd + 0x1000 + TABLE_FLAGS
	.quad	pd + 0x2000 + TABLE_FLAGS
	.quad	pd + 0x3000 + TABLE_FLAGS
	.fill	508, 8, 0

/* Four page directories back to back: 2048 entries of 2 MiB = 4 GiB. */
	.globl	pd
pd:
	.set	.Lpage, 0
	.rept	2048
	.quad	(.Lpage << 21) | LARGE_FLAGS
	.set	.Lpage, .Lpage + 1
	.endr

	.section .note.GNU-stack, "", @progbits
