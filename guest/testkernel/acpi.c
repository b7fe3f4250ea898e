/*
 * ACPI tables: find the RSDP, walk the XSDT (or RSDT), and take from the FADT
 * and MADT what the rest of the kernel needs. Every table is bounds-checked
 * against the identity map, length-checked and checksum-verified before any
 * field is read; a bad table is reported and skipped.
 */
#include "kernel.h"

#define ACPI_HDR_LEN            36
#define ACPI_MAX_TABLE_LEN      (1u << 20)      /* bigger is treated as corrupt */
#define IDENTITY_MAP_END        0x100000000ull
#define DEFAULT_LAPIC_ADDR      0xfee00000u

/* FADT field offsets (ACPI 6.x, table 5.9). */
#define FADT_DSDT               40      /* u32 */
#define FADT_PM1A_CNT_BLK       64      /* u32 I/O port */
#define FADT_FLAGS              112     /* u32 */
#define FADT_RESET_REG          116     /* GAS */
#define FADT_RESET_VALUE        128     /* u8 */
#define FADT_X_DSDT             140     /* u64 */
#define FADT_SLEEP_CONTROL_REG  244     /* GAS */
#define FADT_SLEEP_STATUS_REG   256     /* GAS */
#define GAS_LEN                 12

/* MADT entry types. */
#define MADT_LOCAL_APIC         0
#define MADT_IO_APIC            1
#define MADT_LAPIC_OVERRIDE     5
#define MADT_LOCAL_X2APIC       9
#define MADT_ENABLED            0x1

static bool phys_ok(uint64_t addr, uint64_t size)
{
	return addr != 0 && addr < IDENTITY_MAP_END && size <= IDENTITY_MAP_END - addr;
}

static const uint8_t *phys(uint64_t addr)
{
	return (const uint8_t *)(uintptr_t)addr;
}

static bool checksum_ok(const uint8_t *p, uint32_t len)
{
	uint8_t sum = 0;
	for (uint32_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return sum == 0;
}

/* A printable copy of a 4-byte signature (garbage shows as '?'). */
static void sig_copy(char out[5], const uint8_t *sig)
{
	for (int i = 0; i < 4; i++)
		out[i] = (sig[i] >= 0x20 && sig[i] < 0x7f) ? (char)sig[i] : '?';
	out[4] = '\0';
}

/*
 * Validate the table at addr. Returns it (and its length) or NULL after
 * printing why it was rejected.
 */
static const uint8_t *map_table(uint64_t addr, uint32_t *len_out)
{
	if (!phys_ok(addr, ACPI_HDR_LEN)) {
		kprintf("acpi: bad table address 0x%lx\n", addr);
		return NULL;
	}
	const uint8_t *t = phys(addr);
	char sig[5];
	sig_copy(sig, t);
	uint32_t len = get_le32(t + 4);
	if (len < ACPI_HDR_LEN || len > ACPI_MAX_TABLE_LEN || !phys_ok(addr, len)) {
		kprintf("acpi: bad length %s (%u)\n", sig, len);
		return NULL;
	}
	if (!checksum_ok(t, len)) {
		kprintf("acpi: bad checksum %s\n", sig);
		return NULL;
	}
	*len_out = len;
	return t;
}

static bool rsdp_valid(uint64_t addr)
{
	if (!phys_ok(addr, 20))
		return false;
	const uint8_t *p = phys(addr);
	if (memcmp(p, "RSD PTR ", 8) != 0 || !checksum_ok(p, 20))
		return false;
	if (p[15] >= 2) {
		uint32_t len = get_le32(p + 20);
		if (len < 36 || len > 4096 || !phys_ok(addr, len) || !checksum_ok(p, len))
			return false;
	}
	return true;
}

/* The legacy places: the first KiB of the EBDA, then 0xE0000-0xFFFFF. */
static uint64_t search_rsdp(void)
{
	uint64_t ebda = (uint64_t)get_le16(phys(0x40e)) << 4;
	if (ebda >= 0x80000 && ebda < 0xa0000) {
		for (uint64_t a = ebda; a < ebda + 1024; a += 16) {
			if (rsdp_valid(a))
				return a;
		}
	}
	for (uint64_t a = 0xe0000; a < 0x100000; a += 16) {
		if (rsdp_valid(a))
			return a;
	}
	return 0;
}

static void read_gas(struct gas *g, const uint8_t *p)
{
	g->space = p[0];
	g->bit_width = p[1];
	g->bit_offset = p[2];
	g->access_size = p[3];
	g->address = get_le64(p + 4);
}

/* Read the FADT fields we use, each only if the table is long enough. Returns the DSDT address. */
static uint64_t parse_fadt(const uint8_t *t, uint32_t len, struct acpi_info *acpi)
{
	uint64_t dsdt = 0;
	acpi->have_fadt = true;
	if (len >= FADT_DSDT + 4)
		dsdt = get_le32(t + FADT_DSDT);
	if (len >= FADT_PM1A_CNT_BLK + 4)
		acpi->pm1a_cnt = get_le32(t + FADT_PM1A_CNT_BLK);
	if (len >= FADT_FLAGS + 4)
		acpi->fadt_flags = get_le32(t + FADT_FLAGS);
	if (len >= FADT_RESET_VALUE + 1) {
		read_gas(&acpi->reset_reg, t + FADT_RESET_REG);
		acpi->reset_value = t[FADT_RESET_VALUE];
	}
	if (len >= FADT_X_DSDT + 8 && get_le64(t + FADT_X_DSDT) != 0)
		dsdt = get_le64(t + FADT_X_DSDT);
	if (len >= FADT_SLEEP_CONTROL_REG + GAS_LEN)
		read_gas(&acpi->sleep_control, t + FADT_SLEEP_CONTROL_REG);
	if (len >= FADT_SLEEP_STATUS_REG + GAS_LEN)
		read_gas(&acpi->sleep_status, t + FADT_SLEEP_STATUS_REG);
	return dsdt;
}

static void add_cpu(struct acpi_info *acpi, uint32_t apic_id)
{
	for (uint32_t i = 0; i < acpi->cpu_count; i++) {
		if (acpi->apic_ids[i] == apic_id)
			return;
	}
	if (acpi->cpu_count < MAX_CPUS)
		acpi->apic_ids[acpi->cpu_count++] = apic_id;
}

static void parse_madt(const uint8_t *t, uint32_t len, struct acpi_info *acpi)
{
	if (len < 44)
		return;
	acpi->lapic_addr = get_le32(t + 36);
	uint32_t off = 44;
	while (off + 2 <= len) {
		const uint8_t *e = t + off;
		uint8_t type = e[0], elen = e[1];
		if (elen < 2 || elen > len - off)
			break;          /* malformed: stop rather than guess */
		if (type == MADT_LOCAL_APIC && elen >= 8) {
			if (get_le32(e + 4) & MADT_ENABLED)
				add_cpu(acpi, e[3]);
		} else if (type == MADT_LOCAL_X2APIC && elen >= 16) {
			if (get_le32(e + 8) & MADT_ENABLED)
				add_cpu(acpi, get_le32(e + 4));
		} else if (type == MADT_IO_APIC && elen >= 12) {
			if (acpi->ioapic_count < MAX_IOAPICS) {
				struct ioapic_info *io = &acpi->ioapics[acpi->ioapic_count++];
				io->id = e[2];
				io->addr = get_le32(e + 4);
				io->gsi_base = get_le32(e + 8);
			}
		} else if (type == MADT_LAPIC_OVERRIDE && elen >= 12) {
			acpi->lapic_addr = get_le64(e + 4);
		}
		off += elen;
	}
}

static void print_madt(const struct acpi_info *acpi)
{
	kprintf("acpi: cpus=%u apic-ids=", acpi->cpu_count);
	for (uint32_t i = 0; i < acpi->cpu_count; i++)
		kprintf(i ? ",%u" : "%u", acpi->apic_ids[i]);
	kprintf("\n");
	for (uint32_t i = 0; i < acpi->ioapic_count; i++) {
		const struct ioapic_info *io = &acpi->ioapics[i];
		kprintf("acpi: ioapic id=%u addr=0x%x gsi-base=%u\n", io->id, io->addr, io->gsi_base);
	}
}

static const char *space_name(uint8_t space)
{
	return space == GAS_SYSTEM_MEMORY ? "mem" : space == GAS_SYSTEM_IO ? "io" : "other";
}

static void print_power(const struct acpi_info *acpi)
{
	kprintf("acpi: power sleep-control=%s:0x%lx sleep-status=%s:0x%lx pm1a-cnt=0x%x reset=%s:0x%lx,0x%x s5=",
		space_name(acpi->sleep_control.space), acpi->sleep_control.address,
		space_name(acpi->sleep_status.space), acpi->sleep_status.address,
		acpi->pm1a_cnt, space_name(acpi->reset_reg.space), acpi->reset_reg.address,
		acpi->reset_value);
	if (acpi->have_s5)
		kprintf("%u\n", acpi->slp_typa);
	else
		kprintf("none\n");
}

/* Appends " SIG" to the table list, dropping what does not fit. */
static void list_add(char *list, size_t size, const uint8_t *sig)
{
	size_t n = strlen(list);
	if (n + 6 > size)
		return;
	list[n] = ' ';
	sig_copy(list + n + 1, sig);
}

void acpi_init(const struct boot_info *bi, struct acpi_info *acpi)
{
	memset(acpi, 0, sizeof(*acpi));
	acpi->lapic_addr = DEFAULT_LAPIC_ADDR;

	uint64_t rsdp_addr = bi->rsdp;
	if (rsdp_addr && !rsdp_valid(rsdp_addr)) {
		kprintf("acpi: rsdp at 0x%lx from the boot loader is invalid, searching\n", rsdp_addr);
		rsdp_addr = 0;
	}
	if (!rsdp_addr)
		rsdp_addr = search_rsdp();
	if (!rsdp_addr) {
		kprintf("acpi: no rsdp\n");
		return;
	}
	acpi->rsdp = rsdp_addr;
	const uint8_t *rsdp = phys(rsdp_addr);
	char oem[7];
	int oem_len = 0;
	for (int i = 0; i < 6; i++)
		oem[i] = (rsdp[9 + i] >= 0x20 && rsdp[9 + i] < 0x7f) ? (char)rsdp[9 + i] : '?';
	for (oem_len = 6; oem_len > 0 && oem[oem_len - 1] == ' '; oem_len--)
		;
	oem[oem_len] = '\0';
	uint8_t revision = rsdp[15];
	kprintf("acpi: rsdp=0x%lx oem=%s revision=%u\n", rsdp_addr, oem, revision);

	/* XSDT (8-byte entries) when the RSDP has one, else the RSDT (4-byte entries). */
	uint64_t root_addr = revision >= 2 ? get_le64(rsdp + 24) : 0;
	unsigned entry_size = 8;
	if (!root_addr) {
		root_addr = get_le32(rsdp + 16);
		entry_size = 4;
	}
	uint32_t root_len;
	const uint8_t *root = map_table(root_addr, &root_len);
	if (!root && entry_size == 8 && get_le32(rsdp + 16) != 0) {
		/* A broken XSDT: the RSDT lists the same tables. */
		entry_size = 4;
		root = map_table(get_le32(rsdp + 16), &root_len);
	}
	if (!root)
		return;

	char list[400] = "";
	const uint8_t *fadt = NULL, *madt = NULL;
	uint32_t fadt_len = 0, madt_len = 0;
	uint32_t entries = (root_len - ACPI_HDR_LEN) / entry_size;
	for (uint32_t i = 0; i < entries; i++) {
		const uint8_t *e = root + ACPI_HDR_LEN + i * entry_size;
		uint64_t addr = entry_size == 8 ? get_le64(e) : get_le32(e);
		uint32_t len;
		const uint8_t *t = map_table(addr, &len);
		if (!t)
			continue;
		list_add(list, sizeof(list), t);
		if (!fadt && memcmp(t, "FACP", 4) == 0) {
			fadt = t;
			fadt_len = len;
		} else if (!madt && memcmp(t, "APIC", 4) == 0) {
			madt = t;
			madt_len = len;
		}
	}

	if (fadt) {
		uint64_t dsdt_addr = parse_fadt(fadt, fadt_len, acpi);
		uint32_t len;
		const uint8_t *dsdt = dsdt_addr ? map_table(dsdt_addr, &len) : NULL;
		if (dsdt && memcmp(dsdt, "DSDT", 4) == 0) {
			list_add(list, sizeof(list), dsdt);
			acpi->dsdt = dsdt;
			acpi->dsdt_len = len;
			acpi->have_s5 = aml_find_s5(dsdt, len, &acpi->slp_typa);
		}
	}
	kprintf("acpi: tables:%s\n", list);

	if (madt)
		parse_madt(madt, madt_len, acpi);
	else
		kprintf("acpi: no MADT\n");
	print_madt(acpi);
	if (acpi->have_fadt)
		print_power(acpi);
	if (acpi->dsdt)
		aml_scan_devices(acpi->dsdt, acpi->dsdt_len, acpi);
}
