/*
 * CPL3 support: the TSS (rsp0 for exceptions from ring 3), the user bit in
 * the identity map, and running user_touch (usermode.S) at CPL3. Code at CPL3
 * runs natively on kvm_pvm hosts while CPL0 code is emulated, so touching
 * memory page by page is done there; the user code ends with ud2 and the #UD
 * handler below brings the CPU back to the kernel.
 *
 * Page tables: the static map (pagetables.S) uses 2 MiB pages without the
 * user bit. usermode_init sets the user bit on the upper levels (which alone
 * grants nothing), splits the 2 MiB pages holding the .user section into
 * 4 KiB pages and marks those user pages; usermode_allow marks whole 2 MiB
 * pages above the kernel for a range the user code may write.
 */
#include "kernel.h"
#include "io.h"

#define PTE_PRESENT     0x001ull
#define PTE_WRITE       0x002ull
#define PTE_USER        0x004ull
#define PTE_ACCESSED    0x020ull
#define PTE_DIRTY       0x040ull
#define PTE_LARGE       0x080ull
#define PTE_ADDR_MASK   0x000ffffffffff000ull
#define PAGE_SIZE       0x1000ull
#define LARGE_PAGE_SIZE 0x200000ull
#define MAPPED_END      0x100000000ull  /* the identity map covers 4 GiB */
#define MAX_SPLIT_PDES  2
#define CR4_SMEP        (1ull << 20)
#define CR4_SMAP        (1ull << 21)

#define TSS_TYPE_AVAILABLE_64   0x9ull
#define DESC_PRESENT            (1ull << 47)
#define RSP0_STACK_SIZE         8192
#define VECTOR_UD               6

struct __attribute__((packed)) tss64 {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
};

extern uint64_t gdt[GDT_ENTRIES];
extern uint64_t pml4[512], pdpt[512], pd[2048];
extern const uint8_t __user_start[], __user_end[], _end[];
extern const uint8_t user_touch[], user_stack_top[], user_return[];
extern uint64_t user_kernel_rsp;
uint64_t user_call(uint64_t rip, uint64_t rsp, uint64_t a0, uint64_t a1, uint64_t a2);

static struct tss64 tss __attribute__((aligned(16)));
static uint8_t rsp0_stack[RSP0_STACK_SIZE] __attribute__((aligned(16)));
static uint64_t split_pts[MAX_SPLIT_PDES][512] __attribute__((aligned(4096)));
static unsigned split_count;
static bool ready;

static void reload_cr3(void)
{
	uint64_t cr3;
	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	__asm__ volatile("mov %0, %%cr3" :: "r"(cr3) : "memory");
}

/* The first 2 MiB page above the kernel image: user ranges start there or later. */
static uint64_t kernel_floor(void)
{
	return ((uint64_t)(uintptr_t)_end + LARGE_PAGE_SIZE - 1) & ~(LARGE_PAGE_SIZE - 1);
}

/* Replace the 2 MiB page of pd[index] by 512 identical 4 KiB pages. */
static uint64_t *split_pde(unsigned index)
{
	uint64_t e = pd[index];
	if (!(e & PTE_LARGE))
		return (uint64_t *)(uintptr_t)(e & PTE_ADDR_MASK);
	if (split_count >= MAX_SPLIT_PDES)
		return NULL;
	uint64_t *pt = split_pts[split_count++];
	uint64_t base = e & PTE_ADDR_MASK & ~(LARGE_PAGE_SIZE - 1);
	for (unsigned i = 0; i < 512; i++)
		pt[i] = (base + i * PAGE_SIZE) | PTE_PRESENT | PTE_WRITE | PTE_ACCESSED | PTE_DIRTY;
	pd[index] = (uint64_t)(uintptr_t)pt | PTE_PRESENT | PTE_WRITE | PTE_ACCESSED | PTE_USER;
	return pt;
}

/* ud2 at the end of the user code: resume the kernel at user_return instead of CPL3. */
static void on_invalid_opcode(struct trap_frame *f)
{
	uint64_t lo = (uint64_t)(uintptr_t)__user_start, hi = (uint64_t)(uintptr_t)__user_end;
	if ((f->cs & 3) != 3 || f->rip < lo || f->rip >= hi)
		exception_panic(f);
	f->rax = f->rdi;
	f->rip = (uint64_t)(uintptr_t)user_return;
	f->cs = SEL_KERNEL_CODE64;
	f->rflags = 0x2;
	f->rsp = user_kernel_rsp;
	f->ss = SEL_KERNEL_DATA;
}

bool usermode_init(void)
{
	if (ready)
		return true;

	/* TSS: only rsp0 matters; no I/O bitmap (the base points past the limit). */
	memset(&tss, 0, sizeof(tss));
	tss.rsp[0] = (uint64_t)(uintptr_t)(rsp0_stack + RSP0_STACK_SIZE);
	tss.iomap_base = sizeof(tss);
	uint64_t base = (uint64_t)(uintptr_t)&tss, limit = sizeof(tss) - 1;
	gdt[SEL_TSS / 8] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (TSS_TYPE_AVAILABLE_64 << 40) |
			   DESC_PRESENT | (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
	gdt[SEL_TSS / 8 + 1] = base >> 32;
	__asm__ volatile("ltr %w0" :: "r"((uint16_t)SEL_TSS) : "memory");

	/*
	 * A 64-bit boot loader may leave SMEP/SMAP on. The kernel neither runs
	 * nor reads user pages, but clear them so that no loader state matters.
	 */
	uint64_t cr4;
	__asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
	if (cr4 & (CR4_SMEP | CR4_SMAP))
		__asm__ volatile("mov %0, %%cr4" :: "r"(cr4 & ~(CR4_SMEP | CR4_SMAP)) : "memory");

	/* The user bit at the upper levels: the leaves decide. */
	pml4[0] |= PTE_USER;
	for (unsigned i = 0; i < 4; i++)
		pdpt[i] |= PTE_USER;

	uint64_t lo = (uint64_t)(uintptr_t)__user_start, hi = (uint64_t)(uintptr_t)__user_end;
	for (uint64_t a = lo; a < hi; a += PAGE_SIZE) {
		uint64_t *pt = split_pde((unsigned)(a >> 21));
		if (!pt) {
			kprintf("usermode: cannot split the page tables for 0x%lx\n", a);
			return false;
		}
		pt[(a >> 12) & 511] |= PTE_USER;
	}
	reload_cr3();
	set_trap_handler(VECTOR_UD, on_invalid_opcode);
	ready = true;
	return true;
}

bool usermode_allow(uint64_t start, uint64_t end)
{
	if (start >= end)
		return true;
	if (start < kernel_floor() || end > MAPPED_END) {
		kprintf("usermode: range 0x%lx-0x%lx is not above the kernel and below 4 GiB\n", start, end);
		return false;
	}
	for (uint64_t i = start >> 21; i <= (end - 1) >> 21; i++) {
		if (!(pd[i] & PTE_LARGE))
			return false;   /* only the kernel's own pages are split */
		pd[i] |= PTE_USER;
	}
	reload_cr3();
	return true;
}

uint64_t user_touch_range(uint64_t start, uint64_t end)
{
	if (!ready || start >= end || !usermode_allow(start, end))
		return start;
	return user_call((uint64_t)(uintptr_t)user_touch, (uint64_t)(uintptr_t)user_stack_top,
			 start, end, PAGE_SIZE);
}

uint64_t usermode_floor(void)
{
	return kernel_floor();
}
