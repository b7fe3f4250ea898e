/*
 * A virtio-balloon driver that does what Linux's
 * drivers/virtio/virtio_balloon.c (with mm/page_reporting.c) does, in the
 * same order, polled instead of interrupt driven:
 *   probe: reset, ACKNOWLEDGE, DRIVER, features (VERSION_1 required; MUST_TELL_HOST, STATS_VQ,
 *     DEFLATE_ON_OOM, REPORTING taken when offered), FEATURES_OK and check it,
 *     queues numbered densely (inflate, deflate, [stats], [reporting]), the
 *     first stats buffer posted and notified, then DRIVER_OK;
 *   inflate/deflate: arrays of up to 256 le32 PFNs, one buffer at a time,
 *     waiting for each to be used, `actual` written after each;
 *   stats: one buffer, refilled and re-posted each time the device uses it;
 *   reporting: one chain of up to 32 device-writable blocks, waited for.
 * The memory it hands out is a pool: e820 RAM above the kernel (from the
 * first 2 MiB boundary after it) and below 4 GiB, where nothing of the
 * kernel's lives. The balloon is the top balloon_pages pages of that pool.
 */
#include "balloon.h"
#include "io.h"

#define QUEUE_PAGES     4

struct balloon B;
static const struct kernel_state *K;
static const char *tag_name = "virtio";
static uint8_t queue_mem[QUEUE_PAGES][4096] __attribute__((aligned(4096)));
static bool print_refills;
/* ebb.timeout, read once: at CPL0 every instruction is emulated on kvm_pvm hosts, and scanning
 * the command line for each request would cost the same guest more under a VMM that passes a
 * longer one. */
static uint64_t used_ms;

void balloon_setup(const struct kernel_state *k, const char *tag)
{
	K = k;
	tag_name = tag;
	tsc_init(k->boot->cmdline);
	kprintf("tsc: %lu kHz from %s\n", tsc_khz(), tsc_source());
	print_refills = strcmp(tag, "stats") == 0;
	used_ms = option_u64("ebb.timeout", BALLOON_USED_MS_DEFAULT / 1000) * 1000;
}

const char *balloon_tag(void)
{
	return tag_name;
}

void balloon_timeout(const char *what)
{
	kprintf("%s: timeout waiting for %s\n", tag_name, what);
	power_off(K->acpi);
}

uint64_t option_u64(const char *key, uint64_t def)
{
	return cmdline_get_u64(K->boot->cmdline, key, def);
}

uint64_t used_budget_ms(void)
{
	return used_ms;
}

bool balloon_find(void)
{
	memset(&B.dev, 0, sizeof(B.dev));
	if (!virtio_find(K->acpi, VIRTIO_BALLOON_DEVICE_ID, &B.dev)) {
		kprintf("virtio: no balloon device (LNRO0005 with device id 5, version 2)\n");
		return false;
	}
	return true;
}

/* ---- memory pool */

void balloon_pool_init(void)
{
	const struct boot_info *bi = K->boot;
	uint64_t floor = usermode_floor(), top = 0x100000000ull;
	B.ram_bytes = 0;
	B.pool_count = 0;
	B.pool_pages = 0;
	B.balloon_pages = 0;
	B.busy_pages = 0;
	B.cache_pages = 0;
	for (uint32_t i = 0; i < bi->e820_count; i++) {
		const struct e820_entry *e = &bi->e820[i];
		if (e->type != E820_RAM)
			continue;
		B.ram_bytes += e->size;
		uint64_t s = e->addr, end = e->addr + e->size;
		if (end < s)
			end = ~0ull;
		if (s < floor)
			s = floor;
		if (end > top)
			end = top;
		s = (s + BALLOON_PAGE_SIZE - 1) & ~(BALLOON_PAGE_SIZE - 1);
		end &= ~(BALLOON_PAGE_SIZE - 1);
		if (s >= end)
			continue;
		/* Insert sorted by address (the loader's map need not be sorted). */
		uint32_t j = B.pool_count++;
		while (j > 0 && B.pool[j - 1].start > s) {
			B.pool[j] = B.pool[j - 1];
			j--;
		}
		B.pool[j].start = s;
		B.pool[j].end = end;
	}
	/* Drop overlaps a broken map might have. */
	for (uint32_t i = 1; i < B.pool_count; i++) {
		if (B.pool[i].start < B.pool[i - 1].end)
			B.pool[i].start = B.pool[i - 1].end;
		if (B.pool[i].end < B.pool[i].start)
			B.pool[i].end = B.pool[i].start;
	}
	for (uint32_t i = 0; i < B.pool_count; i++)
		B.pool_pages += (B.pool[i].end - B.pool[i].start) >> BALLOON_PAGE_SHIFT;
}

uint64_t pool_pfn(uint64_t index)
{
	for (uint32_t i = 0; i < B.pool_count; i++) {
		uint64_t pages = (B.pool[i].end - B.pool[i].start) >> BALLOON_PAGE_SHIFT;
		if (index < pages)
			return (B.pool[i].start >> BALLOON_PAGE_SHIFT) + index;
		index -= pages;
	}
	return 0;
}

/* PFNs of pool pages first, first+step, ... (step +1 or -1) into B.pfns. */
static void pool_fill_pfns(uint64_t first, unsigned n, int step)
{
	uint64_t idx = first;
	unsigned i = 0;
	while (i < n) {
		uint64_t base = 0, pages = 0;
		uint32_t r = 0;
		for (; r < B.pool_count; r++) {
			pages = (B.pool[r].end - B.pool[r].start) >> BALLOON_PAGE_SHIFT;
			if (idx < base + pages)
				break;
			base += pages;
		}
		if (r == B.pool_count)
			return;
		/* The rest of this range in the direction of travel, without searching again. */
		uint64_t pfn = (B.pool[r].start >> BALLOON_PAGE_SHIFT) + (idx - base);
		uint64_t run = step > 0 ? base + pages - idx : idx - base + 1;
		if (run > n - i)
			run = n - i;
		/* Two loops, not one with a select: each CPL0 instruction costs ~750 ns on kvm_pvm. */
		uint32_t *out = &B.pfns[i];
		uint32_t p32 = (uint32_t)pfn;
		if (step > 0) {
			for (uint32_t k = 0; k < (uint32_t)run; k++)
				out[k] = p32 + k;
		} else {
			for (uint32_t k = 0; k < (uint32_t)run; k++)
				out[k] = p32 - k;
		}
		i += (unsigned)run;
		idx = step > 0 ? idx + run : idx - run;
	}
}

/* ---- device */

static bool setup_queue(struct virtq *vq, uint32_t index, unsigned page, const char *name,
			uint64_t desc_override)
{
	if (virtq_setup(&B.dev, vq, index, BALLOON_QUEUE_SIZE, (uint64_t)(uintptr_t)queue_mem[page],
			desc_override))
		return true;
	kprintf("virtio: queue %u (%s) not usable: QueueNumMax %u\n", index, name, vq->num_max);
	return false;
}

void balloon_fill_stats(void)
{
	uint64_t free_pages = B.pool_pages - B.balloon_pages - B.busy_pages - B.cache_pages;
	uint64_t memtot = B.ram_bytes;
	/* Linux takes balloon pages out of MemTotal unless DEFLATE_ON_OOM. */
	if (!B.deflate_on_oom)
		memtot -= B.balloon_pages << BALLOON_PAGE_SHIFT;
	static const uint16_t tags[BALLOON_STATS_COUNT] = {
		VIRTIO_BALLOON_S_SWAP_IN, VIRTIO_BALLOON_S_SWAP_OUT, VIRTIO_BALLOON_S_MAJFLT,
		VIRTIO_BALLOON_S_MINFLT, VIRTIO_BALLOON_S_MEMFREE, VIRTIO_BALLOON_S_MEMTOT,
		VIRTIO_BALLOON_S_AVAIL, VIRTIO_BALLOON_S_CACHES,
	};
	for (unsigned i = 0; i < BALLOON_STATS_COUNT; i++) {
		B.stats_buf[i].tag = tags[i];
		B.stats_buf[i].val = 0;
	}
	B.stats_buf[VIRTIO_BALLOON_S_MEMFREE].val = free_pages << BALLOON_PAGE_SHIFT;
	B.stats_buf[VIRTIO_BALLOON_S_MEMTOT].val = memtot;
	/* As Linux's MemAvailable: free memory plus the cache reclaim can drop. */
	B.stats_buf[VIRTIO_BALLOON_S_AVAIL].val = (free_pages + B.cache_pages) << BALLOON_PAGE_SHIFT;
	B.stats_buf[VIRTIO_BALLOON_S_CACHES].val = B.cache_pages << BALLOON_PAGE_SHIFT;
}

static void post_stats(void)
{
	struct virtq_buf b = { (uint64_t)(uintptr_t)B.stats_buf, sizeof(B.stats_buf), false };
	if (virtq_add(&B.stats, &b, 1) < 0) {
		kprintf("virtio: stats queue full\n");
		return;
	}
	virtq_kick(&B.dev, &B.stats);
}

bool balloon_init(const struct balloon_init_opts *opts)
{
	struct virtio_mmio *d = &B.dev;
	B.has_stats = B.has_reporting = B.deflate_on_oom = B.reporting_usable = false;
	B.config_changed = false;
	/* After a reset the device holds no pages of ours. */
	B.balloon_pages = 0;
	memset(&B.inflate, 0, sizeof(B.inflate));
	memset(&B.deflate, 0, sizeof(B.deflate));
	memset(&B.stats, 0, sizeof(B.stats));
	memset(&B.reporting, 0, sizeof(B.reporting));

	if (!virtio_reset(d, tsc_from_ms(BALLOON_RESET_MS))) {
		kprintf("%s: timeout waiting for reset (status 0x%x)\n", tag_name, virtio_get_status(d));
		return false;
	}
	virtio_add_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
	virtio_add_status(d, VIRTIO_STATUS_DRIVER);
	uint64_t offered = virtio_read_device_features(d);
	if (!(offered & (1ull << VIRTIO_F_VERSION_1))) {
		kprintf("virtio: balloon offers features 0x%lx without VERSION_1: refused\n", offered);
		virtio_add_status(d, VIRTIO_STATUS_FAILED);
		return false;
	}
	/* MUST_TELL_HOST: tell_host waits for every deflation before the pages are used, as Linux does. */
	uint64_t want = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_BALLOON_F_MUST_TELL_HOST) |
			(1ull << VIRTIO_BALLOON_F_STATS_VQ) | (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM) |
			(1ull << VIRTIO_BALLOON_F_REPORTING);
	/* ebb.features=<mask> narrows what is accepted (VERSION_1 is always kept). */
	want &= option_u64("ebb.features", ~0ull) | (1ull << VIRTIO_F_VERSION_1);
	uint64_t accepted = offered & want;
	virtio_write_driver_features(d, accepted);
	virtio_add_status(d, VIRTIO_STATUS_FEATURES_OK);
	uint32_t status = virtio_get_status(d);
	if (!(status & VIRTIO_STATUS_FEATURES_OK)) {
		kprintf("virtio: balloon did not keep FEATURES_OK for 0x%lx (status 0x%x): refused\n",
			accepted, status);
		virtio_add_status(d, VIRTIO_STATUS_FAILED);
		return false;
	}
	B.has_stats = accepted & (1ull << VIRTIO_BALLOON_F_STATS_VQ);
	B.deflate_on_oom = accepted & (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
	B.has_reporting = accepted & (1ull << VIRTIO_BALLOON_F_REPORTING);

	/* Queues are numbered densely, as Linux's vm_find_vqs does. */
	uint32_t q = 0;
	if (!setup_queue(&B.inflate, q++, 0, "inflate", 0) ||
	    !setup_queue(&B.deflate, q++, 1, "deflate", 0))
		goto fail;
	if (B.has_stats && !setup_queue(&B.stats, q++, 2, "stats", 0))
		goto fail;
	if (B.has_reporting) {
		uint64_t desc = opts ? opts->reporting_desc_addr : 0;
		if (!setup_queue(&B.reporting, q++, 3, "reporting", desc))
			goto fail;
		B.reporting_usable = B.reporting.size >= REPORT_CAPACITY;
		if (!B.reporting_usable)
			kprintf("virtio: reporting queue has %u entries, fewer than %u: reporting not used\n",
				B.reporting.size, REPORT_CAPACITY);
	}

	/* Linux primes the stats queue before DRIVER_OK (init_vqs). */
	if (B.has_stats) {
		balloon_fill_stats();
		post_stats();
	}
	if (opts && opts->report_before_driver_ok)
		return true;
	virtio_add_status(d, VIRTIO_STATUS_DRIVER_OK);
	return true;

fail:
	virtio_add_status(d, VIRTIO_STATUS_FAILED);
	return false;
}

static void print_queue(const char *name, const struct virtq *vq)
{
	if (vq->size)
		kprintf("virtio: queue %u %s max=%u size=%u\n", vq->index, name, vq->num_max, vq->size);
}

void balloon_print(bool detailed)
{
	const struct virtio_mmio *d = &B.dev;
	if (!detailed) {
		kprintf("virtio: balloon mmio=0x%lx irq=%u features=0x%lx accepted=0x%lx queues=%u,%u,%u,%u\n",
			d->base, d->irq, d->device_features, d->driver_features,
			B.inflate.size, B.deflate.size, B.stats.size, B.reporting.size);
		return;
	}
	kprintf("virtio: device id=%u version=%u features=0x%lx num_pages=%u\n", d->device_id, d->version,
		d->device_features, balloon_read_target());
	kprintf("virtio: mmio=0x%lx irq=%u vendor=0x%x accepted=0x%lx status=0x%x actual=%u\n", d->base,
		d->irq, d->vendor_id, d->driver_features, virtio_get_status(d),
		virtio_config_read32(d, BALLOON_CFG_ACTUAL));
	print_queue("inflate", &B.inflate);
	print_queue("deflate", &B.deflate);
	print_queue("stats", &B.stats);
	print_queue("reporting", &B.reporting);
}

void balloon_poll(void)
{
	uint32_t isr = virtio_ack_interrupts(&B.dev);
	if (isr & VIRTIO_INT_CONFIG)
		B.config_changed = true;
	if (!B.has_stats || !B.stats.size)
		return;
	uint16_t head;
	uint32_t len;
	while (virtq_get_used(&B.stats, &head, &len)) {
		B.stats_refills++;
		if (print_refills)
			kprintf("stats: refilled %lu\n", B.stats_refills);
		balloon_fill_stats();
		post_stats();
	}
}

bool wait_used(struct virtq *vq, uint64_t budget_ms, uint32_t *len)
{
	uint64_t t0 = rdtsc(), budget = tsc_from_ms(budget_ms), interval = tsc_from_ms(1) / 10;
	uint64_t next_poll = t0;
	uint16_t head;
	for (;;) {
		/* The used ring is guest memory: check it every time, the registers less often. */
		if (virtq_get_used(vq, &head, len)) {
			balloon_poll();         /* ack the interrupt, as the handler would */
			return true;
		}
		uint64_t now = rdtsc();
		if (now - t0 > budget) {
			balloon_poll();
			return virtq_get_used(vq, &head, len);
		}
		if (now - next_poll < (1ull << 63)) {
			balloon_poll();
			next_poll = now + interval;
		}
		cpu_relax();
	}
}

/* One buffer of n PFNs on the inflate or deflate queue, waited for (tell_host). */
static void tell_host(struct virtq *vq, unsigned n, const char *what)
{
	struct virtq_buf b = { (uint64_t)(uintptr_t)B.pfns, n * 4u, false };
	if (virtq_add(vq, &b, 1) < 0) {
		kprintf("%s: %s queue full\n", tag_name, what);
		balloon_timeout(what);
	}
	virtq_kick(&B.dev, vq);
	uint32_t len;
	if (!wait_used(vq, used_budget_ms(), &len))
		balloon_timeout(what);
}

uint32_t balloon_read_target(void)
{
	return virtio_config_read32(&B.dev, BALLOON_CFG_NUM_PAGES);
}

void balloon_follow_target(void)
{
	uint64_t t0 = rdtsc(), inflated = 0, deflated = 0, buffers = 0;
	for (;;) {
		uint64_t target = balloon_read_target();
		uint64_t cur = B.balloon_pages;
		if (target == cur)
			break;
		if (target > cur) {
			/* Cache counts as room: inflating past the free pages evicts it (below). */
			uint64_t room = B.pool_pages - B.balloon_pages - B.busy_pages;
			uint64_t n = target - cur;
			if (n > room)
				n = room;
			if (n > BALLOON_PFNS_PER_BUFFER)
				n = BALLOON_PFNS_PER_BUFFER;
			if (n == 0) {
				kprintf("%s: no free pages left to inflate past %lu MiB\n", tag_name,
					B.balloon_pages >> 8);
				break;
			}
			/* The top of the pool downwards. */
			pool_fill_pfns(B.pool_pages - B.balloon_pages - 1, (unsigned)n, -1);
			tell_host(&B.inflate, (unsigned)n, "inflate");
			B.balloon_pages += n;
			/* The balloon reached the cache: as Linux's reclaim gives page cache up to an
			 * allocation that finds no free page, those cache pages are gone. */
			if (B.busy_pages + B.cache_pages > B.pool_pages - B.balloon_pages)
				B.cache_pages = B.pool_pages - B.balloon_pages - B.busy_pages;
			inflated += n;
		} else {
			uint64_t n = cur - target;
			if (n > BALLOON_PFNS_PER_BUFFER)
				n = BALLOON_PFNS_PER_BUFFER;
			/* The pages inflated last go back first. */
			pool_fill_pfns(B.pool_pages - B.balloon_pages, (unsigned)n, 1);
			tell_host(&B.deflate, (unsigned)n, "deflate");
			B.balloon_pages -= n;
			deflated += n;
		}
		buffers++;
		virtio_config_write32(&B.dev, BALLOON_CFG_ACTUAL, (uint32_t)B.balloon_pages);
	}
	if (buffers)
		kprintf("%s: inflated %lu MiB, deflated %lu MiB in %lu buffers in %lu ms\n", tag_name,
			inflated >> 8, deflated >> 8, buffers, tsc_to_ms(rdtsc() - t0));
}

bool balloon_report(const uint64_t *addrs, uint32_t block_bytes, unsigned n, uint64_t budget_ms)
{
	struct virtq_buf bufs[REPORT_CAPACITY];
	if (n == 0 || n > REPORT_CAPACITY)
		return false;
	for (unsigned i = 0; i < n; i++) {
		bufs[i].addr = addrs[i];
		bufs[i].len = block_bytes;
		bufs[i].device_writable = true;
	}
	if (virtq_add(&B.reporting, bufs, n) < 0) {
		kprintf("%s: reporting queue full\n", tag_name);
		return false;
	}
	virtq_kick(&B.dev, &B.reporting);
	uint32_t len;
	return wait_used(&B.reporting, budget_ms, &len);
}
