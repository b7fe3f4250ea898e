/*
 * "ebb.scenario=transport-hostile": the virtio-mmio transport attacked from the driver's side, on
 * the balloon and, when one is attached, a disk:
 *   - every register written with hostile values, at every width, in every driver state (reset,
 *     ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK), and every offset read at every width;
 *   - notifications for queues that do not exist;
 *   - a driver that never acknowledges an interrupt;
 *   - a reset in the middle of a request.
 * After each, the device is reset and set up again and must work: the balloon takes a free page
 * report, the disk reads its first sector. Ebb must still be there to power the guest off.
 */
#include "balloon.h"
#include "io.h"

#define VIRTIO_BLK_DEVICE_ID    2
#define VIRTIO_BLK_T_IN         0
#define STORM_RESET_MS          1000
#define REQUEST_MS              5000
#define NO_ACK_REPORTS          5
#define MID_REQUEST_BYTES       (1u << 20)

enum driver_state { STATE_RESET, STATE_ACKNOWLEDGE, STATE_DRIVER, STATE_FEATURES_OK, STATE_DRIVER_OK, STATE_COUNT };
static const char *const state_names[STATE_COUNT] = { "reset", "acknowledge", "driver", "features-ok", "driver-ok" };

/* A queue page for the storms' DRIVER_OK state and the disk's own small driver. */
static uint8_t storm_queue_page[4096] __attribute__((aligned(4096)));
static uint8_t disk_queue_page[4096] __attribute__((aligned(4096)));
static struct virtq storm_queue, disk_queue;

static struct {
	uint32_t type, reserved;
	uint64_t sector;
} disk_header;
static volatile uint8_t disk_status;

/* Hostile values: all ones, an address past RAM, one inside no queue page, and 0 (a reset when
 * written to Status). */
static const uint32_t hostile_values[] = { 0xffffffffu, 0x80000000u, 0x7fff0000u, 0 };

/* Bring `d` from a reset to `state` as a driver would, with queue 0 set up for DRIVER_OK. */
static bool enter_state(struct virtio_mmio *d, enum driver_state state)
{
	if (!virtio_reset(d, tsc_from_ms(STORM_RESET_MS)))
		return false;
	if (state >= STATE_ACKNOWLEDGE)
		virtio_add_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
	if (state >= STATE_DRIVER)
		virtio_add_status(d, VIRTIO_STATUS_DRIVER);
	if (state >= STATE_FEATURES_OK) {
		virtio_write_driver_features(d, 1ull << VIRTIO_F_VERSION_1);
		virtio_add_status(d, VIRTIO_STATUS_FEATURES_OK);
	}
	if (state >= STATE_DRIVER_OK) {
		memset(storm_queue_page, 0, sizeof(storm_queue_page));
		memset(&storm_queue, 0, sizeof(storm_queue));
		virtq_setup(d, &storm_queue, 0, 16, (uint64_t)(uintptr_t)storm_queue_page, 0);
		virtio_add_status(d, VIRTIO_STATUS_DRIVER_OK);
	}
	return true;
}

/* Every offset of the register window and config space, read at widths 1, 2 and 4 and written
 * with every hostile value at width 4 and with all ones at widths 1 and 2, each write from a
 * fresh `state`. Returns whether every reset along the way completed. */
static bool storm(struct virtio_mmio *d, enum driver_state state)
{
	const uint32_t window = VIRTIO_MMIO_CONFIG + 0x100;
	for (uint32_t off = 0; off < window; off++) {
		(void)mmio_read8(d->base + off);
		if (off % 2 == 0)
			(void)mmio_read16(d->base + off);
		if (off % 4 == 0)
			(void)mmio_read32(d->base + off);
	}
	for (uint32_t off = 0; off < window; off += 4) {
		for (unsigned v = 0; v < ARRAY_SIZE(hostile_values); v++) {
			if (!enter_state(d, state))
				return false;
			mmio_write32(d->base + off, hostile_values[v]);
		}
		if (!enter_state(d, state))
			return false;
		for (uint32_t byte = 0; byte < 4; byte++)
			mmio_write8(d->base + off + byte, 0xff);
		mmio_write16(d->base + off, 0xffff);
		mmio_write16(d->base + off + 2, 0xffff);
	}
	return virtio_reset(d, tsc_from_ms(STORM_RESET_MS));
}

/* QueueNotify for every queue number a device could not have, before and after DRIVER_OK. */
static bool notify_missing_queues(struct virtio_mmio *d)
{
	static const uint32_t queues[] = { 5, 16, 255, 256, 0xffff, 0x10000, 0x7fffffffu, 0xffffffffu };
	for (enum driver_state state = STATE_FEATURES_OK; state <= STATE_DRIVER_OK; state++) {
		if (!enter_state(d, state))
			return false;
		for (unsigned i = 0; i < ARRAY_SIZE(queues); i++)
			vm_write32(d, VIRTIO_MMIO_QUEUE_NOTIFY, queues[i]);
	}
	return virtio_reset(d, tsc_from_ms(STORM_RESET_MS));
}

/* ---- the balloon: set up again, and one report */

static bool balloon_works(void)
{
	if (!balloon_init(NULL) || !B.reporting_usable)
		return false;
	uint64_t block = pool_pfn(0) << BALLOON_PAGE_SHIFT;
	return balloon_report(&block, 2u << 20, 1, used_budget_ms());
}

/* Reports whose interrupt is never acknowledged: the device must go on using buffers. */
static void balloon_without_acks(void)
{
	if (!balloon_init(NULL) || !B.reporting_usable) {
		kprintf("transport: no-ack balloon not set up\n");
		return;
	}
	unsigned used = 0;
	for (unsigned i = 0; i < NO_ACK_REPORTS; i++) {
		struct virtq_buf buf = { pool_pfn(512 * i) << BALLOON_PAGE_SHIFT, 2u << 20, true };
		if (virtq_add(&B.reporting, &buf, 1) < 0)
			break;
		virtq_kick(&B.dev, &B.reporting);
		uint64_t t0 = rdtsc(), budget = tsc_from_ms(REQUEST_MS);
		uint16_t head;
		uint32_t len;
		while (!virtq_get_used(&B.reporting, &head, &len) && rdtsc() - t0 < budget)
			cpu_relax();
		if (rdtsc() - t0 < budget)
			used++;
	}
	uint32_t isr = vm_read32(&B.dev, VIRTIO_MMIO_INTERRUPT_STATUS);
	kprintf("transport: no-ack reports=%u used=%u isr=0x%x\n", NO_ACK_REPORTS, used, isr);
}

/* A report of 32 blocks, and a reset straight after its notify. */
static void balloon_reset_mid_request(void)
{
	if (!balloon_init(NULL) || !B.reporting_usable) {
		kprintf("transport: mid-request balloon not set up\n");
		return;
	}
	struct virtq_buf bufs[REPORT_CAPACITY];
	for (unsigned i = 0; i < REPORT_CAPACITY; i++)
		bufs[i] = (struct virtq_buf){ pool_pfn(512 * i) << BALLOON_PAGE_SHIFT, 2u << 20, true };
	if (virtq_add(&B.reporting, bufs, REPORT_CAPACITY) < 0)
		return;
	virtq_kick(&B.dev, &B.reporting);
	bool reset = virtio_reset(&B.dev, tsc_from_ms(STORM_RESET_MS));
	kprintf("transport: balloon reset mid-request %s, then %s\n", reset ? "done" : "timed out",
		balloon_works() ? "works" : "broken");
}

/* ---- the disk: a driver of its own, just enough to read a sector */

static bool disk_setup(struct virtio_mmio *d)
{
	if (!virtio_reset(d, tsc_from_ms(STORM_RESET_MS)) || !virtio_negotiate(d, 1ull << VIRTIO_F_VERSION_1, "transport"))
		return false;
	memset(disk_queue_page, 0, sizeof(disk_queue_page));
	memset(&disk_queue, 0, sizeof(disk_queue));
	if (!virtq_setup(d, &disk_queue, 0, 16, (uint64_t)(uintptr_t)disk_queue_page, 0))
		return false;
	virtio_add_status(d, VIRTIO_STATUS_DRIVER_OK);
	return true;
}

static void disk_post_read(struct virtio_mmio *d, uint64_t buffer, uint32_t bytes)
{
	disk_header.type = VIRTIO_BLK_T_IN;
	disk_header.reserved = 0;
	disk_header.sector = 0;
	disk_status = 0xff;
	struct virtq_buf chain[3] = {
		{ (uint64_t)(uintptr_t)&disk_header, sizeof(disk_header), false },
		{ buffer, bytes, true },
		{ (uint64_t)(uintptr_t)&disk_status, 1, true },
	};
	if (virtq_add(&disk_queue, chain, 3) >= 0)
		virtq_kick(d, &disk_queue);
}

/* Sets the disk up again and reads 4 KiB; the status byte, or -1 without an answer. */
static int disk_read_status(struct virtio_mmio *d)
{
	if (!disk_setup(d))
		return -1;
	disk_post_read(d, pool_pfn(0) << BALLOON_PAGE_SHIFT, 4096);
	uint64_t t0 = rdtsc(), budget = tsc_from_ms(REQUEST_MS);
	uint16_t head;
	uint32_t len;
	while (!virtq_get_used(&disk_queue, &head, &len)) {
		if (rdtsc() - t0 > budget)
			return -1;
		cpu_relax();
	}
	virtio_ack_interrupts(d);
	return disk_status;
}

static void disk_reset_mid_request(struct virtio_mmio *d)
{
	if (!disk_setup(d))
		return;
	disk_post_read(d, pool_pfn(0) << BALLOON_PAGE_SHIFT, MID_REQUEST_BYTES);
	bool reset = virtio_reset(d, tsc_from_ms(STORM_RESET_MS));
	int status = disk_read_status(d);
	kprintf("transport: disk reset mid-request %s, then read status=%d\n", reset ? "done" : "timed out", status);
}

/* ---- the scenario */

static void attack(const char *name, struct virtio_mmio *d)
{
	for (enum driver_state state = STATE_RESET; state < STATE_COUNT; state++)
		kprintf("transport: %s storm state=%s %s\n", name, state_names[state], storm(d, state) ? "done" : "reset timed out");
	kprintf("transport: %s missing-queue notifies %s\n", name, notify_missing_queues(d) ? "done" : "reset timed out");
}

static void scenario_transport_hostile(const struct kernel_state *k)
{
	balloon_setup(k, "transport");
	balloon_pool_init();
	if (!balloon_find())
		return;
	struct virtio_mmio disk = { 0 };
	bool have_disk = virtio_find(k->acpi, VIRTIO_BLK_DEVICE_ID, &disk);

	attack("balloon", &B.dev);
	kprintf("transport: balloon after the storms %s\n", balloon_works() ? "works" : "broken");
	if (have_disk) {
		attack("disk", &disk);
		kprintf("transport: disk after the storms read status=%d\n", disk_read_status(&disk));
		kprintf("transport: balloon after the disk's storms %s\n", balloon_works() ? "works" : "broken");
	}
	balloon_without_acks();
	balloon_reset_mid_request();
	if (have_disk)
		disk_reset_mid_request(&disk);
	kprintf("transport: done\n");
}

const struct scenario transport_scenarios[] = {
	{ "transport-hostile", scenario_transport_hostile },
};
const size_t transport_scenario_count = ARRAY_SIZE(transport_scenarios);
