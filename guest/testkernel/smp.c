/*
 * Starting the application processors: copy the real-mode trampoline below
 * 1 MiB, send INIT / SIPI / SIPI to each enabled MADT CPU through the xAPIC,
 * and wait (bounded) for each to report in. An AP prints one line, counts
 * itself and halts.
 */
#include "kernel.h"
#include "io.h"

#define LAPIC_ID                0x020
#define LAPIC_SVR               0x0f0
#define LAPIC_ICR_LOW           0x300
#define LAPIC_ICR_HIGH          0x310
#define SVR_APIC_ENABLE         0x100
#define SVR_SPURIOUS_VECTOR     0xff
#define ICR_DELIVERY_INIT       0x500
#define ICR_DELIVERY_STARTUP    0x600
#define ICR_LEVEL_ASSERT        0x4000
#define ICR_SEND_PENDING        0x1000
#define ICR_POLL_LIMIT          1000

#define LOW_MEMORY_END          0xa0000 /* the SIPI vector addresses a page below 1 MiB; VGA/BIOS above this */
#define PAGE_SIZE               0x1000

extern const uint8_t ap_trampoline_start[], ap_trampoline_end[];

uint32_t ap_slots_taken;                /* bumped atomically by each AP in entry64.S */
static uint32_t ap_online;
static uint64_t lapic_base;

static uint32_t lapic_read(uint32_t reg)
{
	return mmio_read32(lapic_base + reg);
}

static void lapic_write(uint32_t reg, uint32_t v)
{
	mmio_write32(lapic_base + reg, v);
}

static void send_ipi(uint32_t apic_id, uint32_t command)
{
	for (int i = 0; i < ICR_POLL_LIMIT && (lapic_read(LAPIC_ICR_LOW) & ICR_SEND_PENDING); i++)
		cpu_relax();
	lapic_write(LAPIC_ICR_HIGH, apic_id << 24);
	lapic_write(LAPIC_ICR_LOW, command);
}

/* A page of usable RAM below 640 KiB for the trampoline: 0x8000 if the e820 map allows. */
static uint64_t pick_trampoline_page(const struct boot_info *bi)
{
	if (bi->e820_count == 0 || bootinfo_is_ram(bi, AP_TRAMPOLINE_PREFERRED, PAGE_SIZE))
		return AP_TRAMPOLINE_PREFERRED;
	for (uint64_t a = PAGE_SIZE; a < LOW_MEMORY_END; a += PAGE_SIZE) {
		if (bootinfo_is_ram(bi, a, PAGE_SIZE))
			return a;
	}
	return 0;
}

/* Each AP's first C code, on its own stack (slot = arrival order). */
void ap_main(uint32_t slot)
{
	(void)slot;
	uint32_t id = lapic_read(LAPIC_ID) >> 24;
	kprintf("cpu %u: online\n", id);
	__atomic_fetch_add(&ap_online, 1, __ATOMIC_RELEASE);
	halt_forever();
}

void smp_start_aps(const struct boot_info *bi, const struct acpi_info *acpi)
{
	lapic_base = acpi->lapic_addr;
	if (acpi->cpu_count <= 1 || lapic_base == 0 || lapic_base >= 0x100000000ull - PAGE_SIZE) {
		kprintf("cpus online: 1\n");
		return;
	}
	uint32_t bsp_id = lapic_read(LAPIC_ID) >> 24;

	uint64_t page = pick_trampoline_page(bi);
	size_t size = (size_t)(ap_trampoline_end - ap_trampoline_start);
	if (!page || size > PAGE_SIZE) {
		kprintf("smp: no page below 640 KiB for the AP trampoline\n");
		kprintf("cpus online: 1\n");
		return;
	}
	memcpy((void *)(uintptr_t)page, ap_trampoline_start, size);
	uint32_t vector = (uint32_t)(page >> 12);

	/* A software-disabled xAPIC may drop IPIs; interrupts stay off (IF=0), so this is harmless. */
	lapic_write(LAPIC_SVR, lapic_read(LAPIC_SVR) | SVR_APIC_ENABLE | SVR_SPURIOUS_VECTOR);

	uint32_t started = 0;
	for (uint32_t i = 0; i < acpi->cpu_count; i++) {
		uint32_t id = acpi->apic_ids[i];
		if (id == bsp_id)
			continue;
		if (id > 0xff) {
			kprintf("cpu %u: x2apic id, not started (xAPIC only)\n", id);
			continue;
		}
		send_ipi(id, ICR_DELIVERY_INIT | ICR_LEVEL_ASSERT);
		tsc_delay(TSC_INIT_TO_SIPI);
		send_ipi(id, ICR_DELIVERY_STARTUP | ICR_LEVEL_ASSERT | vector);
		tsc_delay(TSC_SIPI_TO_SIPI);
		/* The second SIPI is ignored by a CPU that already left wait-for-SIPI. */
		send_ipi(id, ICR_DELIVERY_STARTUP | ICR_LEVEL_ASSERT | vector);
		started++;
	}

	uint64_t t0 = rdtsc();
	while (__atomic_load_n(&ap_online, __ATOMIC_ACQUIRE) < started && rdtsc() - t0 < TSC_AP_WAIT_BUDGET)
		cpu_relax();
	uint32_t online = __atomic_load_n(&ap_online, __ATOMIC_ACQUIRE);
	if (online < started)
		kprintf("smp: %u of %u APs did not come online\n", started - online, started);
	kprintf("cpus online: %u\n", 1 + online);
}
