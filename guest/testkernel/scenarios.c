/*
 * Test scenarios, chosen with "ebb.scenario=<name>" on the command line
 * (default "hello"). Each prints its own lines after "scenario: <name>";
 * returning from run() means "done, power off". To add one, write a
 * function and add a row to the table. The virtio-balloon and virtio-blk
 * scenarios have their own tables, in balloon_scenarios.c, blk.c and net.c.
 */
#include "kernel.h"
#include "io.h"

static void hello(const struct kernel_state *k)
{
	(void)k;
}

static void on_breakpoint(struct trap_frame *f)
{
	/* On hardware (and with Ebb's RIP += 1 workaround) this is the byte after int3. */
	kprintf("int3: handled rip=0x%lx\n", f->rip);
}

static void int3(const struct kernel_state *k)
{
	(void)k;
	set_trap_handler(3, on_breakpoint);
	__asm__ volatile("int3" ::: "memory");
	set_trap_handler(3, NULL);
	kprintf("int3: resumed\n");
}

static void reset(const struct kernel_state *k)
{
	(void)k;
	reset_i8042();
}

static void acpi_reset(const struct kernel_state *k)
{
	reset_acpi(k->acpi);
}

static void triple_fault(const struct kernel_state *k)
{
	(void)k;
	static const struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} empty_idt = { 0, 0 };
	/* #UD cannot be delivered, nor the #GP/#DF that follow: the CPU shuts down. */
	__asm__ volatile("lidt %0\n\tud2" :: "m"(empty_idt) : "memory");
	kprintf("triple-fault: failed\n");
	halt_forever();
}

/* Unassigned MMIO: touched only where the memory map does not say RAM. */
static void bad_mmio(const struct kernel_state *k, uint64_t addr)
{
	if (bootinfo_is_ram(k->boot, addr, 4)) {
		kprintf("bad-io: mmio 0x%lx is RAM here, skipped\n", addr);
		return;
	}
	uint32_t before = mmio_read32(addr);
	mmio_write32(addr, 0x5a5aa5a5);
	uint32_t after = mmio_read32(addr);
	kprintf("bad-io: mmio 0x%lx read 0x%x, after write 0x%x\n", addr, before, after);
}

static void bad_io(const struct kernel_state *k)
{
	uint8_t b80 = inb(0x80);
	outb(0x80, 0x42);
	uint8_t b = inb(0x1234);
	uint16_t w = inw(0x1234);
	outb(0x1234, 0x5a);
	outw(0x1234, 0x5a5a);
	uint32_t l = inl(0xcfc);
	outl(0xcfc, 0xdeadbeef);
	kprintf("bad-io: port 0x80 read 0x%x, 0x1234 read 0x%x/0x%x, 0xcfc read 0x%x\n", b80, b, w, l);
	bad_mmio(k, 0xd8000000);
	bad_mmio(k, 0xfe000000);
	kprintf("bad-io: survived\n");
}

static void spin(const struct kernel_state *k)
{
	(void)k;
	kprintf("spin: forever\n");
	__asm__ volatile("cli");
	for (;;)
		__asm__ volatile("" ::: "memory");
}

static void echo(const struct kernel_state *k)
{
	(void)k;
	kprintf("echo: ready, q quits\n");
	for (;;) {
		uint8_t c;
		if (!serial_poll_byte(&c)) {
			cpu_relax();
			continue;
		}
		kprintf("%c", c);
		if (c == 'q')
			break;
	}
	kprintf("\necho: done\n");
}

/*
 * Reads the i8042 keyboard by polling (scan code set 2, untranslated) until
 * Ctrl+Alt+Del, which is what Firecracker's SendCtrlAltDel types; returning
 * powers the machine off, as a guest told to shut down would.
 */
static void keyboard(const struct kernel_state *k)
{
	(void)k;
	bool ctrl = false, alt = false, extended = false, released = false;
	kprintf("keyboard: ready\n");
	for (;;) {
		if (!(inb(0x64) & 0x01)) {
			cpu_relax();
			continue;
		}
		uint8_t code = inb(0x60);
		if (code == 0xe0) {
			extended = true;
			continue;
		}
		if (code == 0xf0) {
			released = true;
			continue;
		}
		if (!extended && code == 0x14)
			ctrl = !released;
		else if (!extended && code == 0x11)
			alt = !released;
		kprintf("keyboard: %s%x%s\n", extended ? "e0 " : "", code, released ? " up" : "");
		if (extended && code == 0x71 && !released && ctrl && alt) {
			kprintf("keyboard: ctrl-alt-del\n");
			return;
		}
		extended = released = false;
	}
}

static const struct scenario scenarios[] = {
	{ "hello", hello },
	{ "int3", int3 },
	{ "reset", reset },
	{ "acpi-reset", acpi_reset },
	{ "triple-fault", triple_fault },
	{ "bad-io", bad_io },
	{ "spin", spin },
	{ "echo", echo },
	{ "keyboard", keyboard },
};

/* Every table of scenarios: a device's driver file adds its own here. */
static const struct {
	const struct scenario *list;
	const size_t *count;
} tables[] = {
	{ scenarios, NULL },
	{ balloon_scenarios, &balloon_scenario_count },
	{ blk_scenarios, &blk_scenario_count },
	{ net_scenarios, &net_scenario_count },
	{ transport_scenarios, &transport_scenario_count },
};

static size_t table_count(size_t t)
{
	return tables[t].count ? *tables[t].count : ARRAY_SIZE(scenarios);
}

void scenario_run(const struct kernel_state *k)
{
	char name[32] = "hello";
	cmdline_get(k->boot->cmdline, "ebb.scenario", name, sizeof(name));
	kprintf("scenario: %s\n", name);
	for (size_t t = 0; t < ARRAY_SIZE(tables); t++) {
		for (size_t i = 0; i < table_count(t); i++) {
			if (strcmp(tables[t].list[i].name, name) == 0) {
				tables[t].list[i].run(k);
				return;
			}
		}
	}
	kprintf("scenario: unknown, known ones:");
	for (size_t t = 0; t < ARRAY_SIZE(tables); t++)
		for (size_t i = 0; i < table_count(t); i++)
			kprintf(" %s", tables[t].list[i].name);
	kprintf("\n");
}
