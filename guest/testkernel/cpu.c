/*
 * Descriptor tables and exception dispatch. The GDT is static data because
 * the 32-bit entries and the AP trampoline load it before any C runs; the IDT
 * is filled at boot from the stubs in isr.S and shared by all CPUs.
 */
#include "kernel.h"
#include "io.h"

/* Flat segments; accessed bits preset so the CPU never writes the GDT. */
#define DESC_KERNEL_CODE64      0x00af9b000000ffffull   /* L=1, DPL0, exec/read */
#define DESC_KERNEL_CODE32      0x00cf9b000000ffffull   /* D=1, G=1, DPL0, exec/read */
#define DESC_KERNEL_DATA        0x00cf93000000ffffull   /* D=1, G=1, DPL0, read/write */
#define DESC_USER_CODE64        0x00affb000000ffffull   /* L=1, DPL3, exec/read */
#define DESC_USER_DATA          0x00cff3000000ffffull   /* D=1, G=1, DPL3, read/write */

__attribute__((aligned(16))) uint64_t gdt[GDT_ENTRIES] = {
	[SEL_KERNEL_CODE64 / 8] = DESC_KERNEL_CODE64,
	[SEL_KERNEL_DATA / 8] = DESC_KERNEL_DATA,
	/* SEL_USER_CODE32 stays null (no 32-bit user code); usermode.c fills SEL_TSS. */
	[SEL_USER_DATA / 8] = DESC_USER_DATA,
	[SEL_USER_CODE64 / 8] = DESC_USER_CODE64,
	[SEL_KERNEL_CODE32 / 8] = DESC_KERNEL_CODE32,
};

struct __attribute__((packed)) descriptor_ptr {
	uint16_t limit;
	uint64_t base;
};

/* Loaded by lgdt in 32-bit and 64-bit code alike (32-bit code reads 6 bytes). */
struct descriptor_ptr gdt_ptr = { sizeof(gdt) - 1, (uint64_t)(uintptr_t)gdt };

struct __attribute__((packed)) idt_gate {
	uint16_t offset_low;
	uint16_t selector;
	uint8_t ist;
	uint8_t type_attr;
	uint16_t offset_mid;
	uint32_t offset_high;
	uint32_t reserved;
};

#define GATE_INTERRUPT_DPL0     0x8e    /* present, 64-bit interrupt gate: IF cleared on entry */

static __attribute__((aligned(16))) struct idt_gate idt[IDT_VECTORS];
struct descriptor_ptr idt_ptr;          /* also loaded by the APs in entry64.S */

extern const uint64_t isr_stub_table[IDT_VECTORS];

static trap_handler_fn trap_handlers[IDT_VECTORS];

static const char *const exception_names[IDT_VECTORS] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
	"#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "15",
	"#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "22", "23",
	"24", "25", "26", "27", "#HV", "#VC", "#SX", "31",
};

void cpu_init_bsp(void)
{
	for (unsigned v = 0; v < IDT_VECTORS; v++) {
		uint64_t a = isr_stub_table[v];
		idt[v].offset_low = (uint16_t)a;
		idt[v].selector = SEL_KERNEL_CODE64;
		idt[v].ist = 0;
		idt[v].type_attr = GATE_INTERRUPT_DPL0;
		idt[v].offset_mid = (uint16_t)(a >> 16);
		idt[v].offset_high = (uint32_t)(a >> 32);
		idt[v].reserved = 0;
	}
	idt_ptr.limit = sizeof(idt) - 1;
	idt_ptr.base = (uint64_t)(uintptr_t)idt;
	__asm__ volatile("lidt %0" :: "m"(idt_ptr));
}

void set_trap_handler(unsigned vector, trap_handler_fn fn)
{
	if (vector < IDT_VECTORS)
		trap_handlers[vector] = fn;
}

/* Called from isr_common; returning resumes the interrupted code with iretq. */
void exception_dispatch(struct trap_frame *f)
{
	if (f->vector < IDT_VECTORS && trap_handlers[f->vector]) {
		trap_handlers[f->vector](f);
		return;
	}
	exception_panic(f);
}

void exception_panic(struct trap_frame *f)
{
	uint64_t cr2;
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	console_panic_mode();
	kprintf("panic: exception %lu (%s) error=0x%lx rip=0x%lx rsp=0x%lx cr2=0x%lx\n",
		f->vector, f->vector < IDT_VECTORS ? exception_names[f->vector] : "?",
		f->error_code, f->rip, f->rsp, cr2);
	halt_forever();
}
