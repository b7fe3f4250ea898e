/*
 * Copy what the boot loader handed over (Linux boot_params or PVH
 * hvm_start_info) into struct boot_info, once, before any of that memory is
 * reused (the AP trampoline goes to low memory). Everything is bounds-checked
 * against the 4 GiB identity map; nothing the loader wrote is trusted.
 */
#include "kernel.h"

/* struct boot_params (the "zero page"), Documentation/arch/x86/zero-page.rst */
#define BP_ACPI_RSDP_ADDR       0x070   /* u64 */
#define BP_EXT_CMD_LINE_PTR     0x0c8   /* u32: high 32 bits of the command line address */
#define BP_E820_ENTRIES         0x1e8   /* u8 */
#define BP_CMD_LINE_PTR         0x228   /* u32, in the setup header */
#define BP_E820_TABLE           0x2d0   /* 128 x {u64 addr, u64 size, u32 type} */
#define BP_E820_ENTRY_SIZE      20
#define BP_SIZE                 0x1000

/* struct hvm_start_info, xen/include/public/arch-x86/hvm/start_info.h */
#define HVM_START_MAGIC         0x336ec578
#define SI_MAGIC                0       /* u32 */
#define SI_VERSION              4       /* u32 */
#define SI_CMDLINE_PADDR        24      /* u64 */
#define SI_RSDP_PADDR           32      /* u64 */
#define SI_MEMMAP_PADDR         40      /* u64, version >= 1 */
#define SI_MEMMAP_ENTRIES       48      /* u32, version >= 1 */
#define SI_SIZE_V1              56
#define SI_MEMMAP_ENTRY_SIZE    24      /* {u64 addr, u64 size, u32 type, u32 reserved} */

#define IDENTITY_MAP_END        0x100000000ull

/* Is [addr, addr + size) non-null and inside the identity map? */
static bool phys_ok(uint64_t addr, uint64_t size)
{
	return addr != 0 && addr < IDENTITY_MAP_END && size <= IDENTITY_MAP_END - addr;
}

static const uint8_t *phys(uint64_t addr)
{
	return (const uint8_t *)(uintptr_t)addr;
}

static void copy_cmdline(struct boot_info *bi, uint64_t addr)
{
	bi->cmdline[0] = '\0';
	if (!phys_ok(addr, 1))
		return;
	uint64_t room = IDENTITY_MAP_END - addr;
	size_t max = CMDLINE_MAX - 1;
	if (room < max)
		max = (size_t)room;
	const uint8_t *s = phys(addr);
	size_t n = 0;
	for (; n < max && s[n]; n++) {
		uint8_t c = s[n];
		/* Control bytes would corrupt the one-line output format. */
		bi->cmdline[n] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	bi->cmdline[n] = '\0';
}

static void add_e820(struct boot_info *bi, uint64_t addr, uint64_t size, uint32_t type)
{
	/* Some loaders pass empty entries (QEMU's PVH map ends with one): drop them. */
	if (bi->e820_count >= E820_MAX || size == 0)
		return;
	struct e820_entry *e = &bi->e820[bi->e820_count++];
	e->addr = addr;
	e->size = size;
	e->type = type;
}

static void collect_linux(struct boot_info *bi, uint64_t bp_addr)
{
	if (!phys_ok(bp_addr, BP_SIZE)) {
		bi->problem = "boot_params pointer is not usable";
		bi->problem_value = bp_addr;
		return;
	}
	const uint8_t *bp = phys(bp_addr);
	uint64_t cmd = get_le32(bp + BP_CMD_LINE_PTR) | ((uint64_t)get_le32(bp + BP_EXT_CMD_LINE_PTR) << 32);
	copy_cmdline(bi, cmd);
	bi->rsdp = get_le64(bp + BP_ACPI_RSDP_ADDR);
	unsigned n = bp[BP_E820_ENTRIES];
	if (n > E820_MAX)
		n = E820_MAX;
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *e = bp + BP_E820_TABLE + i * BP_E820_ENTRY_SIZE;
		add_e820(bi, get_le64(e), get_le64(e + 8), get_le32(e + 16));
	}
}

static void collect_pvh(struct boot_info *bi, uint64_t si_addr)
{
	if (!phys_ok(si_addr, SI_SIZE_V1)) {
		bi->problem = "hvm_start_info pointer is not usable";
		bi->problem_value = si_addr;
		return;
	}
	const uint8_t *si = phys(si_addr);
	uint32_t magic = get_le32(si + SI_MAGIC);
	if (magic != HVM_START_MAGIC) {
		bi->problem = "bad hvm_start_info magic";
		bi->problem_value = magic;
		return;
	}
	uint32_t version = get_le32(si + SI_VERSION);
	copy_cmdline(bi, get_le64(si + SI_CMDLINE_PADDR));
	bi->rsdp = get_le64(si + SI_RSDP_PADDR);
	if (version < 1)
		return;         /* version 0 has no memory map */
	uint64_t map = get_le64(si + SI_MEMMAP_PADDR);
	uint32_t n = get_le32(si + SI_MEMMAP_ENTRIES);
	if (n > E820_MAX)
		n = E820_MAX;
	if (n == 0 || !phys_ok(map, (uint64_t)n * SI_MEMMAP_ENTRY_SIZE))
		return;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = phys(map) + i * SI_MEMMAP_ENTRY_SIZE;
		add_e820(bi, get_le64(e), get_le64(e + 8), get_le32(e + 16));
	}
}

void bootinfo_collect(int path, uint64_t info_paddr, struct boot_info *bi)
{
	bi->path = path;
	bi->cmdline[0] = '\0';
	bi->e820_count = 0;
	bi->rsdp = 0;
	bi->problem = NULL;
	if (path == BOOT_PVH)
		collect_pvh(bi, info_paddr);
	else
		collect_linux(bi, info_paddr);
}

static const char *e820_type_name(uint32_t type)
{
	switch (type) {
	case 1: return "usable";
	case 2: return "reserved";
	case 3: return "acpi-data";
	case 4: return "acpi-nvs";
	case 5: return "unusable";
	case 7: return "persistent";
	default: return "other";
	}
}

void bootinfo_print(const struct boot_info *bi)
{
	const char *path = bi->path == BOOT_PVH ? "pvh" : "bzimage";
	kprintf("ebb-test-kernel: boot=%s cmdline=\"%s\"\n", path, bi->cmdline);
	if (bi->problem)
		kprintf("boot: %s (0x%lx)\n", bi->problem, bi->problem_value);

	uint64_t usable = 0;
	for (uint32_t i = 0; i < bi->e820_count; i++) {
		if (bi->e820[i].type == E820_RAM)
			usable += bi->e820[i].size;
	}
	kprintf("memory: %u e820 entries, %lu MiB usable\n", bi->e820_count, usable >> 20);
	for (uint32_t i = 0; i < bi->e820_count; i++) {
		const struct e820_entry *e = &bi->e820[i];
		kprintf("e820: 0x%016lx-0x%016lx %s (%u)\n", e->addr, e->addr + e->size - 1,
			e820_type_name(e->type), e->type);
	}
}

bool bootinfo_is_ram(const struct boot_info *bi, uint64_t addr, uint64_t size)
{
	for (uint32_t i = 0; i < bi->e820_count; i++) {
		const struct e820_entry *e = &bi->e820[i];
		if (e->type == E820_RAM && addr >= e->addr && addr - e->addr <= e->size &&
		    size <= e->size - (addr - e->addr))
			return true;
	}
	return false;
}

/*
 * Find "key=value" among the space-separated words of the command line; the
 * last occurrence wins, as in Linux. Returns false if the key is absent.
 */
bool cmdline_get(const char *cmdline, const char *key, char *out, size_t out_size)
{
	size_t key_len = strlen(key);
	bool found = false;
	const char *p = cmdline;
	while (*p) {
		while (*p == ' ')
			p++;
		const char *word = p;
		while (*p && *p != ' ')
			p++;
		size_t word_len = (size_t)(p - word);
		if (word_len > key_len && memcmp(word, key, key_len) == 0 && word[key_len] == '=') {
			size_t n = word_len - key_len - 1;
			if (n >= out_size)
				n = out_size - 1;
			memcpy(out, word + key_len + 1, n);
			out[n] = '\0';
			found = true;
		}
	}
	return found;
}

/* A number option: decimal or 0x-prefixed hex. Returns def if absent or not a number. */
uint64_t cmdline_get_u64(const char *cmdline, const char *key, uint64_t def)
{
	char buf[24];
	if (!cmdline_get(cmdline, key, buf, sizeof(buf)) || buf[0] == '\0')
		return def;
	const char *p = buf;
	unsigned base = 10;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
		if (*p == '\0')
			return def;
	}
	uint64_t v = 0;
	for (; *p; p++) {
		unsigned digit;
		if (*p >= '0' && *p <= '9')
			digit = (unsigned)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			digit = (unsigned)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			digit = (unsigned)(*p - 'A' + 10);
		else
			return def;
		v = v * base + digit;
	}
	return v;
}
