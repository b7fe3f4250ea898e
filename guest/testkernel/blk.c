/*
 * A polled virtio-blk driver (virtio 1.2 section 5.2) and its scenarios,
 * "ebb.scenario=blk-*" (README.md lists what each prints). Requests are
 * Linux's shape: a 16-byte header the device reads, the data, and a status
 * byte the device writes, each its own descriptor. The hostile scenario then
 * sends what no sane driver sends and checks that the disk answers each bad
 * request with a status, that only a broken queue needs a reset, and that the
 * balloon keeps working meanwhile.
 */
#include "balloon.h"
#include "io.h"

#define VIRTIO_BLK_DEVICE_ID    2
#define VIRTIO_BLK_F_SIZE_MAX   1
#define VIRTIO_BLK_F_SEG_MAX    2
#define VIRTIO_BLK_F_RO         5
#define VIRTIO_BLK_F_BLK_SIZE   6
#define VIRTIO_BLK_F_FLUSH      9
#define VIRTIO_BLK_F_DISCARD    13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define VIRTIO_BLK_T_IN         0
#define VIRTIO_BLK_T_OUT        1
#define VIRTIO_BLK_T_FLUSH      4
#define VIRTIO_BLK_T_GET_ID     8
#define VIRTIO_BLK_T_DISCARD    11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define BLK_NO_STATUS           0xff    /* never used by the device: "no answer" */
#define BLK_RESET_MS            1000
#define BLK_BROKEN_MS           2000

struct blk_header {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct blk_range {
	uint64_t sector;
	uint32_t sectors;
	uint32_t flags;
};

static struct virtio_mmio D;
static struct virtq Q;
static uint64_t capacity;
static uint64_t features;
static uint8_t queue_page[4096] __attribute__((aligned(4096)));
static struct blk_header header __attribute__((aligned(16)));
static volatile uint8_t status_byte;
static uint8_t data[8192] __attribute__((aligned(4096)));
static struct blk_range ranges[2] __attribute__((aligned(16)));

static const char *const status_names[] = { "OK", "IOERR", "UNSUPP" };

static const char *status_name(int s)
{
	return s >= 0 && s < 3 ? status_names[s] : "none";
}

static uint32_t fnv1a(const uint8_t *p, uint32_t n)
{
	uint32_t h = 2166136261u;
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static bool blk_init(void)
{
	if (!virtio_reset(&D, tsc_from_ms(BLK_RESET_MS))) {
		kprintf("blk: timeout waiting for reset (status 0x%x)\n", virtio_get_status(&D));
		return false;
	}
	uint64_t want = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) |
			(1ull << VIRTIO_BLK_F_RO) | (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH) |
			(1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	features = virtio_negotiate(&D, want, "blk");
	if (!features)
		return false;
	capacity = (uint64_t)virtio_config_read32(&D, 0) | ((uint64_t)virtio_config_read32(&D, 4) << 32);
	if (!virtq_setup(&D, &Q, 0, VIRTQ_MAX_SIZE, (uint64_t)(uintptr_t)queue_page, 0)) {
		kprintf("blk: queue 0 not set up (QueueNumMax %u)\n", Q.num_max);
		return false;
	}
	virtio_add_status(&D, VIRTIO_STATUS_DRIVER_OK);
	return true;
}

/* Waits for the chain to come back; the status byte, or -1 if it did not within the budget. */
static int blk_wait(uint64_t budget_ms)
{
	uint64_t t0 = rdtsc(), budget = tsc_from_ms(budget_ms);
	uint16_t head;
	uint32_t len;
	for (;;) {
		if (virtq_get_used(&Q, &head, &len)) {
			virtio_ack_interrupts(&D);
			return status_byte;
		}
		if (rdtsc() - t0 > budget)
			return -1;
		cpu_relax();
	}
}

/* Header, then `n` buffers, then the status byte; returns the status (-1: no answer). */
static int blk_submit(uint32_t type, uint64_t sector, const struct virtq_buf *bufs, unsigned n)
{
	struct virtq_buf chain[8];
	header.type = type;
	header.reserved = 0;
	header.sector = sector;
	status_byte = BLK_NO_STATUS;
	chain[0] = (struct virtq_buf){ (uint64_t)(uintptr_t)&header, sizeof(header), false };
	for (unsigned i = 0; i < n; i++)
		chain[1 + i] = bufs[i];
	chain[1 + n] = (struct virtq_buf){ (uint64_t)(uintptr_t)&status_byte, 1, true };
	if (virtq_add(&Q, chain, n + 2) < 0)
		return -1;
	virtq_kick(&D, &Q);
	return blk_wait(used_budget_ms());
}

static int blk_rw(uint32_t type, uint64_t sector, uint32_t bytes)
{
	/* Two buffers, so the device has to gather and scatter. */
	uint32_t half = bytes / 2;
	struct virtq_buf bufs[2] = {
		{ (uint64_t)(uintptr_t)data, half, type == VIRTIO_BLK_T_IN },
		{ (uint64_t)(uintptr_t)data + half, bytes - half, type == VIRTIO_BLK_T_IN },
	};
	return blk_submit(type, sector, bufs, 2);
}

static int blk_range_request(uint32_t type, uint64_t sector, uint32_t sectors, uint32_t flags)
{
	ranges[0] = (struct blk_range){ sector, sectors, flags };
	struct virtq_buf buf = { (uint64_t)(uintptr_t)ranges, sizeof(ranges[0]), false };
	return blk_submit(type, sector, &buf, 1);
}

static bool blk_start(const struct kernel_state *k)
{
	balloon_setup(k, "blk");
	memset(&D, 0, sizeof(D));
	if (!virtio_find(k->acpi, VIRTIO_BLK_DEVICE_ID, &D)) {
		kprintf("blk: no disk (LNRO0005 with device id 2, version 2)\n");
		return false;
	}
	if (!blk_init())
		return false;
	kprintf("blk: capacity=%lu sectors features=0x%lx ro=%d\n", capacity, features,
		(features >> VIRTIO_BLK_F_RO) & 1 ? 1 : 0);
	return true;
}

static void blk_print_read(uint64_t sector)
{
	int s = blk_rw(VIRTIO_BLK_T_IN, sector, 4096);
	kprintf("blk: read sector=%lu bytes=4096 status=%s fnv=0x%x\n", sector, status_name(s),
		s == 0 ? fnv1a(data, 4096) : 0);
}

/* ---- scenarios */

static void scenario_read(const struct kernel_state *k)
{
	if (!blk_start(k))
		return;
	memset(data, 0, 32);
	struct virtq_buf id = { (uint64_t)(uintptr_t)data, 20, true };
	int s = blk_submit(VIRTIO_BLK_T_GET_ID, 0, &id, 1);
	data[20] = 0;
	kprintf("blk: get-id status=%s serial='%s'\n", status_name(s), (const char *)data);
	blk_print_read(0);
	blk_print_read(capacity - 8);
	kprintf("blk: done\n");
}

/*
 * PATCH /drives/{id} while the guest runs: read the first image, wait (polling InterruptStatus
 * every millisecond, for ebb.hold seconds) for the config interrupt that says the disk changed,
 * then read the new capacity and the new image.
 */
static void scenario_swap(const struct kernel_state *k)
{
	if (!blk_start(k))
		return;
	blk_print_read(0);
	uint64_t before = capacity;
	kprintf("blk-swap: waiting for a new image\n");
	uint64_t t0 = rdtsc(), budget = tsc_from_ms(option_u64("ebb.hold", 30) * 1000);
	while (!(virtio_ack_interrupts(&D) & VIRTIO_INT_CONFIG)) {
		if (rdtsc() - t0 > budget) {
			kprintf("blk-swap: timeout waiting for the config change\n");
			return;
		}
		tsc_delay(tsc_from_ms(1));
	}
	capacity = (uint64_t)virtio_config_read32(&D, 0) | ((uint64_t)virtio_config_read32(&D, 4) << 32);
	kprintf("blk-swap: config changed capacity=%lu sectors (was %lu)\n", capacity, before);
	blk_print_read(0);
	blk_print_read(capacity - 8);
	kprintf("blk: done\n");
}

static void fill_pattern(void)
{
	for (uint32_t i = 0; i < 4096; i++)
		data[i] = (uint8_t)(i * 31 + 7);
}

static void scenario_write(const struct kernel_state *k)
{
	if (!blk_start(k))
		return;
	fill_pattern();
	uint32_t sent = fnv1a(data, 4096);
	int w = blk_rw(VIRTIO_BLK_T_OUT, 16, 4096);
	int f = blk_submit(VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
	kprintf("blk: write sector=16 bytes=4096 status=%s flush=%s\n", status_name(w), status_name(f));
	memset(data, 0, 4096);
	int r = blk_rw(VIRTIO_BLK_T_IN, 16, 4096);
	kprintf("blk: read-back status=%s %s\n", status_name(r), r == 0 && fnv1a(data, 4096) == sent ? "matches" : "differs");
	int z = blk_range_request(VIRTIO_BLK_T_WRITE_ZEROES, 32, 8, 0);
	kprintf("blk: write-zeroes sector=32 sectors=8 status=%s\n", status_name(z));
	uint64_t discard_sector = option_u64("ebb.discard_sector", 2048), discard_sectors = option_u64("ebb.discard_sectors", 2048);
	int d = blk_range_request(VIRTIO_BLK_T_DISCARD, discard_sector, (uint32_t)discard_sectors, 0);
	kprintf("blk: discard sector=%lu sectors=%lu status=%s\n", discard_sector, discard_sectors, status_name(d));
	f = blk_submit(VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
	kprintf("blk: flush status=%s\n", status_name(f));
	kprintf("blk: done\n");
}

static void scenario_readonly(const struct kernel_state *k)
{
	if (!blk_start(k))
		return;
	fill_pattern();
	kprintf("blk: write status=%s\n", status_name(blk_rw(VIRTIO_BLK_T_OUT, 0, 4096)));
	kprintf("blk: discard status=%s\n", status_name(blk_range_request(VIRTIO_BLK_T_DISCARD, 0, 8, 0)));
	blk_print_read(0);
	kprintf("blk: flush status=%s\n", status_name(blk_submit(VIRTIO_BLK_T_FLUSH, 0, NULL, 0)));
	kprintf("blk: done\n");
}

/* ---- hostile */

/* Bad requests that still have a status byte: the device must answer, and keep going. */
static void hostile_answered(void)
{
	uint64_t pool = pool_pfn(0) << 12;
	struct virtq_buf buf;
	int s;

	s = blk_rw(VIRTIO_BLK_T_IN, capacity, 4096);
	kprintf("blk-hostile: past-the-end status=%s\n", status_name(s));
	s = blk_rw(VIRTIO_BLK_T_IN, capacity - 4, 4096);
	kprintf("blk-hostile: straddling-the-end status=%s\n", status_name(s));
	s = blk_rw(VIRTIO_BLK_T_IN, ~0ull - 3, 4096);
	kprintf("blk-hostile: sector-overflow status=%s\n", status_name(s));

	buf = (struct virtq_buf){ (uint64_t)(uintptr_t)data, 100, true };
	s = blk_submit(VIRTIO_BLK_T_IN, 0, &buf, 1);
	kprintf("blk-hostile: odd-length status=%s\n", status_name(s));

	buf = (struct virtq_buf){ pool, 64u << 20, true };
	s = blk_submit(VIRTIO_BLK_T_IN, 0, &buf, 1);
	kprintf("blk-hostile: huge-length status=%s\n", status_name(s));

	buf = (struct virtq_buf){ (uint64_t)(uintptr_t)data, 4096, false };
	s = blk_submit(VIRTIO_BLK_T_IN, 0, &buf, 1);
	kprintf("blk-hostile: read-into-readable status=%s\n", status_name(s));

	s = blk_submit(0x55, 0, NULL, 0);
	kprintf("blk-hostile: unknown-type status=%s\n", status_name(s));

	ranges[0] = (struct blk_range){ 0, 8, 0x80 };
	buf = (struct virtq_buf){ (uint64_t)(uintptr_t)ranges, sizeof(ranges[0]), false };
	s = blk_submit(VIRTIO_BLK_T_DISCARD, 0, &buf, 1);
	kprintf("blk-hostile: discard-reserved-flags status=%s\n", status_name(s));

	/* A header of 8 bytes: the chain is header(8), status. */
	struct virtq_buf chain[2] = {
		{ (uint64_t)(uintptr_t)&header, 8, false },
		{ (uint64_t)(uintptr_t)&status_byte, 1, true },
	};
	header.type = VIRTIO_BLK_T_IN;
	status_byte = BLK_NO_STATUS;
	if (virtq_add(&Q, chain, 2) >= 0) {
		virtq_kick(&D, &Q);
		s = blk_wait(used_budget_ms());
	} else {
		s = -1;
	}
	kprintf("blk-hostile: short-header status=%s\n", status_name(s));
}

/* Waits for DEVICE_NEEDS_RESET; then resets, re-initializes, and reads. */
static void expect_broken_then_recover(const char *name)
{
	uint64_t t0 = rdtsc(), budget = tsc_from_ms(BLK_BROKEN_MS);
	uint32_t st;
	while (!((st = virtio_get_status(&D)) & VIRTIO_STATUS_NEEDS_RESET) && rdtsc() - t0 < budget)
		cpu_relax();
	uint32_t isr = virtio_ack_interrupts(&D);
	kprintf("blk-hostile: %s needs-reset=%s used=%s isr=0x%x\n", name, st & VIRTIO_STATUS_NEEDS_RESET ? "yes" : "no",
		virtq_has_used(&Q) ? "yes" : "no", isr);
	bool ok = blk_init() && blk_rw(VIRTIO_BLK_T_IN, 0, 4096) == 0;
	kprintf("blk-hostile: %s %s\n", name, ok ? "recovered" : "not recovered");
}

static void hostile_broken(void)
{
	/* The status byte in a descriptor the device may not write. */
	struct virtq_buf chain[3] = {
		{ (uint64_t)(uintptr_t)&header, sizeof(header), false },
		{ (uint64_t)(uintptr_t)data, 4096, true },
		{ (uint64_t)(uintptr_t)&status_byte, 1, false },
	};
	header = (struct blk_header){ VIRTIO_BLK_T_IN, 0, 0 };
	if (virtq_add(&Q, chain, 3) >= 0)
		virtq_kick(&D, &Q);
	expect_broken_then_recover("status-read-only");

	/* A chain whose last descriptor points back at its head. */
	chain[2].device_writable = true;
	int head = virtq_add(&Q, chain, 3);
	if (head >= 0) {
		uint16_t second = Q.desc[head].next, third = Q.desc[second].next;
		Q.desc[third].flags |= VIRTQ_DESC_F_NEXT;
		Q.desc[third].next = (uint16_t)head;
		virtq_kick(&D, &Q);
	}
	expect_broken_then_recover("descriptor-loop");
}

static void scenario_hostile(const struct kernel_state *k)
{
	if (!blk_start(k))
		return;
	balloon_pool_init();
	hostile_answered();
	blk_print_read(0);
	hostile_broken();
	/* The balloon, next door, must not have noticed. */
	bool reported = false;
	if (balloon_find() && balloon_init(NULL) && B.reporting_usable) {
		uint64_t block = pool_pfn(0) << 12;
		reported = balloon_report(&block, 2u << 20, 1, used_budget_ms());
	}
	kprintf("blk-hostile: balloon report %s\n", reported ? "used" : "not used");
	kprintf("blk: done\n");
}

/* ---- speed */

/* One pass of `count` requests of `bytes` each: sequential from sector 0, or at random 4 KiB-aligned
 * places; prints MB/s and IOPS from the TSC. The buffer is pool RAM (above the kernel). */
static void speed_pass(const char *name, uint32_t type, bool random, uint32_t bytes, uint32_t count, uint64_t buffer)
{
	uint64_t sectors = bytes / 512, span = capacity / sectors, seed = 0x2545f4914f6cdd1dull;
	uint32_t errors = 0;
	uint64_t t0 = rdtsc();
	for (uint32_t i = 0; i < count; i++) {
		uint64_t slot = i % span;
		if (random) {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			slot = seed % span;
		}
		struct virtq_buf buf = { buffer, bytes, type == VIRTIO_BLK_T_IN };
		if (blk_submit(type, slot * sectors, &buf, 1) != 0)
			errors++;
	}
	uint64_t us = tsc_to_us(rdtsc() - t0);
	if (us == 0)
		us = 1;
	uint64_t total = (uint64_t)bytes * count;
	kprintf("blk-speed: %s bytes=%u count=%u us=%lu MBps=%lu IOPS=%lu errors=%u\n", name, bytes, count, us,
		total / us, (uint64_t)count * 1000000 / us, errors);
}

static void scenario_speed(const struct kernel_state *k)
{
	if (!blk_start(k))
		return;
	balloon_pool_init();
	uint64_t buffer = pool_pfn(0) << 12;
	uint32_t seq = (uint32_t)option_u64("ebb.seq_count", 32), rnd = (uint32_t)option_u64("ebb.rand_count", 256);
	speed_pass("seq-read-1M", VIRTIO_BLK_T_IN, false, 1u << 20, seq, buffer);
	speed_pass("seq-write-1M", VIRTIO_BLK_T_OUT, false, 1u << 20, seq, buffer);
	speed_pass("rand-read-4K", VIRTIO_BLK_T_IN, true, 4096, rnd, buffer);
	speed_pass("rand-write-4K", VIRTIO_BLK_T_OUT, true, 4096, rnd, buffer);
	kprintf("blk-speed: flush status=%s\n", status_name(blk_submit(VIRTIO_BLK_T_FLUSH, 0, NULL, 0)));
	kprintf("blk: done\n");
}

const struct scenario blk_scenarios[] = {
	{ "blk-speed", scenario_speed },
	{ "blk-read", scenario_read },
	{ "blk-write", scenario_write },
	{ "blk-readonly", scenario_readonly },
	{ "blk-hostile", scenario_hostile },
	{ "blk-swap", scenario_swap },
};
const size_t blk_scenario_count = ARRAY_SIZE(blk_scenarios);
