/*
 * The TSC frequency, for printing milliseconds and bounding waits in
 * seconds. Sources, first that answers wins:
 *   ebb.tsc_khz=<n> on the command line;
 *   CPUID 0x15 (TSC/crystal ratio and crystal Hz);
 *   CPUID 0x16 (base MHz);
 *   kvmclock: the tsc_to_system_mul/tsc_shift pair KVM writes into a
 *     pvclock page (MSR_KVM_SYSTEM_TIME_NEW), if CPUID 0x40000000 says KVM
 *     and 0x40000001 offers CLOCKSOURCE2 (a #GP on the MSR is caught);
 *   otherwise a guess of 2 GHz.
 */
#include "kernel.h"
#include "io.h"

#define KVM_CPUID_SIGNATURE     0x40000000u
#define KVM_CPUID_FEATURES      0x40000001u
#define KVM_FEATURE_CLOCKSOURCE2 (1u << 3)
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01u
#define PVCLOCK_ENABLE          1u
#define VECTOR_GP               13
#define GUESS_KHZ               2000000ull
#define WRMSR_LEN               2       /* 0f 30 */

/* struct pvclock_vcpu_time_info (arch/x86/include/asm/pvclock-abi.h) */
struct __attribute__((packed)) pvclock_time {
	uint32_t version;
	uint32_t pad0;
	uint64_t tsc_timestamp;
	uint64_t system_time;
	uint32_t tsc_to_system_mul;
	int8_t tsc_shift;
	uint8_t flags;
	uint8_t pad[2];
};

static uint64_t khz = GUESS_KHZ;
static const char *source = "guess";
static volatile struct pvclock_time pvclock __attribute__((aligned(64)));
static volatile bool msr_faulted;

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

static void on_gp_skip_wrmsr(struct trap_frame *f)
{
	const uint8_t *ip = (const uint8_t *)(uintptr_t)f->rip;
	if ((f->cs & 3) != 0 || ip[0] != 0x0f || ip[1] != 0x30)
		exception_panic(f);
	msr_faulted = true;
	f->rip += WRMSR_LEN;
}

static void wrmsr_guarded(uint32_t msr, uint64_t v)
{
	set_trap_handler(VECTOR_GP, on_gp_skip_wrmsr);
	__asm__ volatile("wrmsr" :: "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
	set_trap_handler(VECTOR_GP, NULL);
}

static uint64_t from_kvmclock(void)
{
	uint32_t r[4];
	cpuid(KVM_CPUID_SIGNATURE, 0, r);
	if (r[1] != 0x4b4d564b || r[2] != 0x564b4d56 || r[3] != 0x4d || r[0] < KVM_CPUID_FEATURES)
		return 0;       /* not "KVMKVMKVM\0\0\0" */
	cpuid(KVM_CPUID_FEATURES, 0, r);
	if (!(r[0] & KVM_FEATURE_CLOCKSOURCE2))
		return 0;
	memset((void *)&pvclock, 0, sizeof(pvclock));
	msr_faulted = false;
	wrmsr_guarded(MSR_KVM_SYSTEM_TIME_NEW, (uint64_t)(uintptr_t)&pvclock | PVCLOCK_ENABLE);
	if (msr_faulted)
		return 0;
	/* KVM fills the page on the next entry; any exit gives it one. */
	uint32_t mul = 0;
	int8_t shift = 0;
	for (int i = 0; i < 1000 && mul == 0; i++) {
		(void)inb(0x80);
		uint32_t v = pvclock.version;
		if (v & 1)
			continue;
		__asm__ volatile("" ::: "memory");
		mul = pvclock.tsc_to_system_mul;
		shift = pvclock.tsc_shift;
		__asm__ volatile("" ::: "memory");
		if (pvclock.version != v)
			mul = 0;
	}
	wrmsr_guarded(MSR_KVM_SYSTEM_TIME_NEW, 0);
	if (mul == 0)
		return 0;
	/* ns = (tsc << shift) * mul >> 32, so kHz = 10^6 * 2^32 / mul, shifted back. */
	uint64_t k = (1000000ull << 32) / mul;
	if (shift < 0)
		k <<= -shift;
	else
		k >>= shift;
	return k;
}

void tsc_init(const char *cmdline)
{
	uint64_t v = cmdline_get_u64(cmdline, "ebb.tsc_khz", 0);
	if (v >= 1000) {
		khz = v;
		source = "cmdline";
		return;
	}
	uint32_t r[4];
	cpuid(0, 0, r);
	uint32_t max_leaf = r[0];
	if (max_leaf >= 0x15) {
		cpuid(0x15, 0, r);
		if (r[0] && r[1] && r[2]) {
			khz = (uint64_t)r[2] * r[1] / r[0] / 1000;
			source = "cpuid-15";
			return;
		}
	}
	if (max_leaf >= 0x16) {
		cpuid(0x16, 0, r);
		if (r[0] & 0xffff) {
			khz = (uint64_t)(r[0] & 0xffff) * 1000;
			source = "cpuid-16";
			return;
		}
	}
	uint64_t k = from_kvmclock();
	if (k >= 1000) {
		khz = k;
		source = "kvmclock";
	}
}

uint64_t tsc_khz(void)
{
	return khz;
}

const char *tsc_source(void)
{
	return source;
}

uint64_t tsc_from_ms(uint64_t ms)
{
	return ms * khz;
}

uint64_t tsc_to_ms(uint64_t cycles)
{
	return cycles / khz;
}

uint64_t tsc_to_us(uint64_t cycles)
{
	/* cycles * 1000 overflows only after ~200 days at 1 GHz. */
	return cycles * 1000 / khz;
}
