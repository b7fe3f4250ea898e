/*
 * Declarations shared between the C files of the test kernel.
 */
#ifndef EBB_KERNEL_H
#define EBB_KERNEL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * TSC budgets, in cycles. The TSC frequency is unknown (no calibration
 * source is trusted), so these assume roughly 2-4 GHz and err on the long
 * side; a wait only runs to its end when something has already gone wrong.
 */
#define TSC_AP_WAIT_BUDGET      6000000000ull   /* ~2 s: all APs report online */
#define TSC_INIT_TO_SIPI        2000000ull      /* ~1 ms after INIT */
#define TSC_SIPI_TO_SIPI        400000ull       /* ~200 us between the two SIPIs */
#define TSC_SETTLE              3000000000ull   /* ~1 s for a power-off/reset to land */

/* ---- lib.c: the few libc functions gcc may emit calls to, plus helpers */
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
uint16_t get_le16(const uint8_t *p);
uint32_t get_le32(const uint8_t *p);
uint64_t get_le64(const uint8_t *p);

/* ---- serial.c: the 8250 UART at 0x3f8 */
void serial_init(void);
void serial_putc(char c);
bool serial_poll_byte(uint8_t *out);

/* ---- console.c: formatted output, one line at a time across CPUs */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vkprintf(const char *fmt, va_list ap);
void console_panic_mode(void);

/* ---- bootinfo.c: what the boot loader told us, copied out once */
#define E820_MAX        128
#define E820_RAM        1
#define CMDLINE_MAX     2048

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

struct boot_info {
	int path;                       /* BOOT_PVH / BOOT_LINUX32 / BOOT_LINUX64 */
	char cmdline[CMDLINE_MAX];
	uint32_t e820_count;
	struct e820_entry e820[E820_MAX];
	uint64_t rsdp;                  /* 0: not given, search for it */
	const char *problem;            /* why the loader's data was rejected, printed later */
	uint64_t problem_value;
};

void bootinfo_collect(int path, uint64_t info_paddr, struct boot_info *bi);
void bootinfo_print(const struct boot_info *bi);
bool bootinfo_is_ram(const struct boot_info *bi, uint64_t addr, uint64_t size);
bool cmdline_get(const char *cmdline, const char *key, char *out, size_t out_size);
uint64_t cmdline_get_u64(const char *cmdline, const char *key, uint64_t def);

/* ---- acpi.c: RSDP, XSDT/RSDT, FADT, MADT */
struct gas {                            /* ACPI Generic Address Structure */
	uint8_t space;                  /* 0 system memory, 1 system I/O */
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
};
#define GAS_SYSTEM_MEMORY 0
#define GAS_SYSTEM_IO     1

struct ioapic_info {
	uint32_t id;
	uint32_t addr;
	uint32_t gsi_base;
};

#define MAX_IOAPICS 8
#define MAX_ACPI_DEVICES 32
#define ACPI_HID_MAX 16

/* A DSDT device with a _HID and a _CRS buffer (first resource of each kind). */
struct acpi_device {
	char hid[ACPI_HID_MAX];
	bool have_mem, have_io, have_irq;
	uint32_t mem_base, mem_size;
	uint32_t io_base;
	uint32_t irq;
};

struct acpi_info {
	uint64_t rsdp;
	bool have_fadt;
	uint32_t fadt_flags;
	struct gas reset_reg;
	uint8_t reset_value;
	struct gas sleep_control;
	struct gas sleep_status;
	uint32_t pm1a_cnt;

	const uint8_t *dsdt;            /* validated: checksum and length */
	uint32_t dsdt_len;
	bool have_s5;
	uint8_t slp_typa;

	uint64_t lapic_addr;
	uint32_t cpu_count;
	uint32_t apic_ids[MAX_CPUS];
	uint32_t ioapic_count;
	struct ioapic_info ioapics[MAX_IOAPICS];

	uint32_t device_count;          /* DSDT devices, in DSDT order (first MAX_ACPI_DEVICES) */
	struct acpi_device devices[MAX_ACPI_DEVICES];
};

void acpi_init(const struct boot_info *bi, struct acpi_info *acpi);

/* ---- aml_scan.c: pattern scan of the DSDT's AML bytes */
void aml_scan_devices(const uint8_t *table, uint32_t len, struct acpi_info *acpi);
bool aml_find_s5(const uint8_t *table, uint32_t len, uint8_t *slp_typa);

/* ---- cpu.c: GDT, IDT and exception dispatch */
struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error_code;
	uint64_t rip, cs, rflags, rsp, ss;      /* pushed by the CPU */
};
typedef void (*trap_handler_fn)(struct trap_frame *f);

void cpu_init_bsp(void);
void set_trap_handler(unsigned vector, trap_handler_fn fn);
__attribute__((noreturn)) void exception_panic(struct trap_frame *f);

/* ---- usermode.c: running code at CPL3 (user_touch in usermode.S) */
bool usermode_init(void);                               /* TSS, user pages, #UD return path */
bool usermode_allow(uint64_t start, uint64_t end);      /* user bit on the 2 MiB pages of a range */
uint64_t usermode_floor(void);                          /* first 2 MiB boundary above the kernel */
/* Write one word into every 4 KiB page of [start, end) at CPL3; returns where it stopped. */
uint64_t user_touch_range(uint64_t start, uint64_t end);

/* ---- time.c: TSC frequency (CPUID 0x15/0x16, kvmclock, ebb.tsc_khz or a guess) */
void tsc_init(const char *cmdline);
uint64_t tsc_khz(void);
const char *tsc_source(void);
uint64_t tsc_from_ms(uint64_t ms);
uint64_t tsc_to_ms(uint64_t cycles);
uint64_t tsc_to_us(uint64_t cycles);

/* ---- smp.c: starting the APs */
void smp_start_aps(const struct boot_info *bi, const struct acpi_info *acpi);

/* ---- power.c */
bool gas_write(const struct gas *g, uint64_t value, unsigned bytes);
__attribute__((noreturn)) void power_off(const struct acpi_info *acpi);
__attribute__((noreturn)) void reset_i8042(void);
__attribute__((noreturn)) void reset_acpi(const struct acpi_info *acpi);

/* ---- scenarios.c */
struct kernel_state {
	const struct boot_info *boot;
	const struct acpi_info *acpi;
};
struct scenario {
	const char *name;
	void (*run)(const struct kernel_state *k);
};
void scenario_run(const struct kernel_state *k);

/* ---- balloon_scenarios.c: the virtio-balloon scenarios */
extern const struct scenario balloon_scenarios[];
extern const size_t balloon_scenario_count;
extern const struct scenario blk_scenarios[];
extern const size_t blk_scenario_count;
extern const struct scenario net_scenarios[];
extern const size_t net_scenario_count;
extern const struct scenario transport_scenarios[];
extern const size_t transport_scenario_count;

/* ---- main.c */
void kmain(int path, uint64_t info_paddr);

#endif
