/*
 * The virtio-balloon scenarios: virtio, reclaim, balloon, stats and the
 * hostile-* ones (README.md lists what each prints). Memory is touched at
 * CPL3 (usermode.c), where kvm_pvm hosts run code natively.
 */
#include "balloon.h"
#include "io.h"

#define MIB                     ((uint64_t)1 << 20)
#define LARGE_PAGE              ((uint64_t)2 << 20)
#define HOSTILE_CHECK_MS        500
#define HOSTILE_RECOVER_MS      2000
#define HOSTILE_SETTLE_MS       50
#define HOSTILE_OUTSIDE_ADDR    0x7fff00000000ull
#define MAX_ORDER               18      /* 1 GiB blocks; a descriptor len is 32 bits */

static bool start(const struct kernel_state *k, const char *tag, const struct balloon_init_opts *opts)
{
	balloon_setup(k, tag);
	balloon_pool_init();
	if (!balloon_find())
		return false;
	if (!balloon_init(opts)) {
		kprintf("%s: device initialization failed\n", tag);
		return false;
	}
	return true;
}

#define HOLD_POLL_MS            1

/* Wait `ms`, servicing the device every millisecond (stats refills; config changes are only noted). */
static void hold_ms(uint64_t ms)
{
	uint64_t t0 = rdtsc(), budget = tsc_from_ms(ms);
	while (rdtsc() - t0 < budget) {
		balloon_poll();
		tsc_delay(tsc_from_ms(HOLD_POLL_MS));
	}
}

/* ---- virtio */

static void scenario_virtio(const struct kernel_state *k)
{
	if (!start(k, "virtio", NULL))
		return;
	balloon_print(true);
}

/* ---- mmio-latency: what one register read that exits to the VMM costs, as a polling driver pays it */

static void scenario_mmio_latency(const struct kernel_state *k)
{
	if (!start(k, "mmio-latency", NULL))
		return;
	uint64_t reads = option_u64("ebb.reads", 2000);
	uint64_t t0 = rdtsc();
	for (uint64_t i = 0; i < reads; i++)
		(void)vm_read32(&B.dev, VIRTIO_MMIO_INTERRUPT_STATUS);
	uint64_t us = tsc_to_us(rdtsc() - t0);
	kprintf("mmio-latency: %lu reads of InterruptStatus in %lu us, %lu ns each\n", reads, us, us * 1000 / (reads ? reads : 1));
}

/* ---- reclaim */

static void scenario_reclaim(const struct kernel_state *k)
{
	if (!start(k, "reclaim", NULL))
		return;
	balloon_print(false);
	if (!usermode_init())
		return;

	/* Every option is read before the timed part: a scan of the command line at CPL0 is slow
	 * on kvm_pvm hosts and would weigh on whichever VMM passes the longer one. */
	uint64_t want = option_u64("ebb.touch", 512) * MIB;
	uint64_t hold_s = option_u64("ebb.hold", 0);
	uint64_t pause_ms = option_u64("ebb.pause", 0);
	/* Linux's own parameter (what `ebb run --reporting-order` and WSL2 set) unless ebb.order says otherwise. */
	uint64_t order = option_u64("ebb.order",
				    option_u64("page_reporting.page_reporting_order", REPORTING_ORDER_DEFAULT));
	if (order > MAX_ORDER) {
		kprintf("reclaim: order %lu too large, using %u\n", order, MAX_ORDER);
		order = MAX_ORDER;
	}
	uint64_t block = BALLOON_PAGE_SIZE << order;
	uint64_t align = block > LARGE_PAGE ? block : LARGE_PAGE;

	/* The first pool range that holds the whole request, else the largest. */
	uint64_t start_addr = 0, len = 0;
	for (uint32_t i = 0; i < B.pool_count; i++) {
		uint64_t s = (B.pool[i].start + align - 1) & ~(align - 1);
		if (s >= B.pool[i].end)
			continue;
		uint64_t avail = B.pool[i].end - s;
		if (avail >= want) {
			start_addr = s;
			len = want;
			break;
		}
		if (avail > len) {
			start_addr = s;
			len = avail;
		}
	}
	len &= ~(BALLOON_PAGE_SIZE - 1);
	if (len == 0) {
		kprintf("reclaim: no free RAM above the kernel\n");
		return;
	}
	kprintf("reclaim: region 0x%lx-0x%lx order=%lu\n", start_addr, start_addr + len - 1, order);

	B.busy_pages = len >> BALLOON_PAGE_SHIFT;
	uint64_t t0 = rdtsc();
	uint64_t stopped = user_touch_range(start_addr, start_addr + len);
	uint64_t t1 = rdtsc();
	if (stopped < start_addr + len)
		kprintf("reclaim: touch stopped at 0x%lx\n", stopped);
	kprintf("reclaim: touched %lu MiB in %lu ms\n", len / MIB, tsc_to_ms(t1 - t0));

	if (!B.reporting_usable) {
		kprintf("reclaim: reporting not available\n");
		hold_ms(hold_s * 1000);
		return;
	}
	/* ebb.pause=<ms>: time for a test to see the touched memory before it is reported. */
	hold_ms(pause_ms);

	/* "Free" the region, then report each whole naturally aligned block of it. */
	B.busy_pages = 0;
	uint64_t first = (start_addr + block - 1) & ~(block - 1);
	uint64_t last = (start_addr + len) & ~(block - 1);
	uint64_t blocks = last > first ? (last - first) / block : 0;
	uint64_t reports = 0, addrs[REPORT_CAPACITY];
	t0 = rdtsc();
	for (uint64_t done = 0; done < blocks;) {
		unsigned n = 0;
		for (; n < REPORT_CAPACITY && done < blocks; n++, done++)
			addrs[n] = first + done * block;
		if (!balloon_report(addrs, (uint32_t)block, n, used_budget_ms()))
			balloon_timeout("report");
		reports++;
	}
	t1 = rdtsc();
	kprintf("reclaim: reported %lu blocks (%lu MiB) in %lu reports in %lu ms\n", blocks,
		blocks * block / MIB, reports, tsc_to_ms(t1 - t0));
	kprintf("reclaim: done\n");
	hold_ms(hold_s * 1000);
}

/* ---- balloon */

static void print_balloon(void)
{
	kprintf("balloon: target %u MiB, actual %lu MiB\n", balloon_read_target() >> 8, B.balloon_pages >> 8);
}

/* Touch pool pages [0, pages) at CPL3, range by range. */
static uint64_t touch_pool_pages(uint64_t pages)
{
	uint64_t touched = 0;
	for (uint32_t i = 0; i < B.pool_count && touched < pages; i++) {
		uint64_t s = B.pool[i].start;
		uint64_t n = (B.pool[i].end - s) >> BALLOON_PAGE_SHIFT;
		if (n > pages - touched)
			n = pages - touched;
		uint64_t end = s + (n << BALLOON_PAGE_SHIFT);
		uint64_t stopped = user_touch_range(s, end);
		touched += (stopped - s) >> BALLOON_PAGE_SHIFT;
		if (stopped < end) {
			kprintf("balloon: touch stopped at 0x%lx\n", stopped);
			break;
		}
	}
	return touched;
}

/* Wait `ms`, servicing the device and following each target change; an inflation that evicted
 * cache (the cache scenario's model) says how much is left. */
static void hold_following_target(uint64_t ms)
{
	uint64_t t0 = rdtsc(), budget = tsc_from_ms(ms);
	while (rdtsc() - t0 < budget) {
		balloon_poll();
		if (B.config_changed) {
			B.config_changed = false;
			uint64_t before = B.cache_pages;
			balloon_follow_target();
			print_balloon();
			if (B.cache_pages != before)
				kprintf("cache: now %lu MiB\n", B.cache_pages >> 8);
		}
		tsc_delay(tsc_from_ms(HOLD_POLL_MS));
	}
}

static void scenario_balloon(const struct kernel_state *k)
{
	if (!start(k, "balloon", NULL))
		return;
	balloon_print(false);
	if (!usermode_init())
		return;

	balloon_follow_target();
	print_balloon();

	uint64_t free_pages = B.pool_pages - B.balloon_pages;
	uint64_t limit = option_u64("ebb.touch", ~0ull >> 20);
	if (limit < (free_pages >> 8))
		free_pages = limit << 8;
	uint64_t touched = touch_pool_pages(free_pages);
	kprintf("balloon: touched %lu MiB\n", touched >> 8);

	hold_following_target(option_u64("ebb.hold", 5) * 1000);
}

/* ---- cache: a page cache model for the agentless reclaim */

/*
 * Touches ebb.touch MiB (default 16) as the guest's own memory and ebb.cache MiB (default 128)
 * above it as page cache, then follows the target for ebb.hold s (10). The balloon takes free
 * pages first, then evicts cache from its top (see balloon_follow_target); deflated pages come
 * back free, the cache does not regrow. Each change prints the cache left.
 */
static void scenario_cache(const struct kernel_state *k)
{
	if (!start(k, "cache", NULL))
		return;
	balloon_print(false);
	if (!usermode_init())
		return;
	/* A target set before boot is followed first, as Linux's driver does once it is up. */
	balloon_follow_target();
	uint64_t anon = option_u64("ebb.touch", 16) << 8, cache = option_u64("ebb.cache", 128) << 8;
	if (anon + cache > B.pool_pages - B.balloon_pages) {
		kprintf("cache: %lu MiB do not fit in %lu MiB\n", (anon + cache) >> 8, B.pool_pages >> 8);
		return;
	}
	uint64_t touched = touch_pool_pages(anon + cache);
	B.busy_pages = anon;
	B.cache_pages = touched > anon ? touched - anon : 0;
	kprintf("cache: touched %lu MiB, cache %lu MiB\n", touched >> 8, B.cache_pages >> 8);

	hold_following_target(option_u64("ebb.hold", 10) * 1000);
	kprintf("cache: done cache=%lu MiB balloon=%lu MiB\n", B.cache_pages >> 8, B.balloon_pages >> 8);
}

/* ---- stats */

static void scenario_stats(const struct kernel_state *k)
{
	if (!start(k, "stats", NULL))
		return;
	balloon_print(false);
	if (!B.has_stats) {
		kprintf("stats: stats queue not available\n");
		return;
	}
	hold_ms(option_u64("ebb.hold", 3) * 1000);
	kprintf("stats: done after %lu refills\n", B.stats_refills);
}

/* ---- hostile */

enum hostile_kind {
	HOSTILE_LOOP, HOSTILE_OUTSIDE, HOSTILE_UNALIGNED, HOSTILE_HUGE,
	HOSTILE_WRAP, HOSTILE_NEXT, HOSTILE_EARLY, HOSTILE_RING,
};

static const char *const hostile_names[] = {
	[HOSTILE_LOOP] = "loop", [HOSTILE_OUTSIDE] = "outside", [HOSTILE_UNALIGNED] = "unaligned",
	[HOSTILE_HUGE] = "huge", [HOSTILE_WRAP] = "wrap", [HOSTILE_NEXT] = "next",
	[HOSTILE_EARLY] = "early", [HOSTILE_RING] = "ring",
};

/* The first whole 2 MiB block of the pool: a valid report target. */
static uint64_t pool_first_block(void)
{
	for (uint32_t i = 0; i < B.pool_count; i++) {
		uint64_t s = (B.pool[i].start + LARGE_PAGE - 1) & ~(LARGE_PAGE - 1);
		if (s < B.pool[i].end && B.pool[i].end - s >= LARGE_PAGE)
			return s;
	}
	return 0;
}

static bool in_pool(uint64_t addr, uint64_t len)
{
	for (uint32_t i = 0; i < B.pool_count; i++) {
		if (addr >= B.pool[i].start && addr < B.pool[i].end && len <= B.pool[i].end - addr)
			return true;
	}
	return false;
}

/* One descriptor at the queue's free head, published; a raw notify follows. */
static void hostile_desc(struct virtq *vq, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next,
			 uint16_t advance)
{
	uint16_t h = vq->free_head;
	vq->desc[h].addr = addr;
	vq->desc[h].len = len;
	vq->desc[h].flags = flags;
	vq->desc[h].next = next;
	virtq_publish(vq, h, advance);
	kprintf("hostile: desc %u addr=0x%lx len=0x%x flags=0x%x next=%u avail idx=%u\n", h, addr, len, flags,
		next, vq->avail_idx);
}

/* Reset, start again from scratch, and see one valid report through. */
static void hostile_recover(uint64_t block)
{
	if (!balloon_init(NULL)) {
		kprintf("hostile: not recovered\n");
		return;
	}
	if (!B.reporting_usable) {
		kprintf("hostile: reporting queue not usable after reset\n");
		kprintf("hostile: not recovered\n");
		return;
	}
	if (balloon_report(&block, (uint32_t)LARGE_PAGE, 1, HOSTILE_RECOVER_MS))
		kprintf("hostile: recovered\n");
	else
		kprintf("hostile: not recovered (status=0x%x)\n", virtio_get_status(&B.dev));
}

static void hostile(const struct kernel_state *k, enum hostile_kind kind)
{
	const char *name = hostile_names[kind];
	struct balloon_init_opts opts = { 0 };
	if (kind == HOSTILE_RING)
		opts.reporting_desc_addr = HOSTILE_OUTSIDE_ADDR;
	if (kind == HOSTILE_EARLY)
		opts.report_before_driver_ok = true;
	if (!start(k, "hostile", &opts))
		return;
	balloon_print(false);
	if (!B.has_reporting || B.reporting.size == 0) {
		kprintf("hostile: reporting not available\n");
		return;
	}
	uint64_t block = pool_first_block();
	if (!block) {
		kprintf("hostile: no 2 MiB block of free RAM\n");
		return;
	}

	struct virtq *vq = &B.reporting;
	uint16_t before = vq->used->idx;
	switch (kind) {
	case HOSTILE_LOOP:
		hostile_desc(vq, block, (uint32_t)LARGE_PAGE, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
			     vq->free_head, 1);
		break;
	case HOSTILE_OUTSIDE:
		hostile_desc(vq, HOSTILE_OUTSIDE_ADDR, (uint32_t)LARGE_PAGE, VIRTQ_DESC_F_WRITE, 0, 1);
		break;
	case HOSTILE_UNALIGNED: {
		uint64_t base = in_pool(0x200000, LARGE_PAGE) ? 0x200000 : block;
		hostile_desc(vq, base + 1, (uint32_t)LARGE_PAGE - 1, VIRTQ_DESC_F_WRITE, 0, 1);
		break;
	}
	case HOSTILE_HUGE:
		hostile_desc(vq, block, 0xffffffffu, VIRTQ_DESC_F_WRITE, 0, 1);
		break;
	case HOSTILE_WRAP:
		hostile_desc(vq, block, (uint32_t)LARGE_PAGE, VIRTQ_DESC_F_WRITE, 0, (uint16_t)(vq->size + 5));
		break;
	case HOSTILE_NEXT:
		hostile_desc(vq, block, (uint32_t)LARGE_PAGE, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
			     vq->size, 1);
		break;
	case HOSTILE_EARLY:
	case HOSTILE_RING: {
		/* A valid report; early: before DRIVER_OK; ring: the device looks for it outside RAM. */
		struct virtq_buf b = { block, (uint32_t)LARGE_PAGE, true };
		int h = virtq_add(vq, &b, 1);
		kprintf("hostile: desc %d addr=0x%lx len=0x%lx flags=0x%x avail idx=%u%s\n", h, block, LARGE_PAGE,
			VIRTQ_DESC_F_WRITE, vq->avail_idx,
			kind == HOSTILE_EARLY ? ", before DRIVER_OK" : ", queue desc at 0x7fff00000000");
		break;
	}
	}
	vm_write32(&B.dev, VIRTIO_MMIO_QUEUE_NOTIFY, vq->index);

	/* Give the device a moment: until it uses something or asks for a reset. */
	uint64_t t0 = rdtsc(), budget = tsc_from_ms(HOSTILE_CHECK_MS);
	uint32_t isr = 0, status = 0;
	bool used = false;
	for (;;) {
		isr |= virtio_ack_interrupts(&B.dev);
		status = virtio_get_status(&B.dev);
		used = vq->used->idx != before;
		if (used || (status & VIRTIO_STATUS_NEEDS_RESET) || rdtsc() - t0 > budget)
			break;
		cpu_relax();
	}
	/* A device working on another thread may raise the interrupt just after the status. */
	uint64_t t1 = rdtsc(), settle = tsc_from_ms(HOSTILE_SETTLE_MS);
	while (rdtsc() - t1 < settle) {
		isr |= virtio_ack_interrupts(&B.dev);
		cpu_relax();
	}
	status = virtio_get_status(&B.dev);
	used = vq->used->idx != before;
	kprintf("hostile: %s used=%s used-idx=%u isr=0x%x after %lu ms\n", name, used ? "yes" : "no",
		vq->used->idx, isr, tsc_to_ms(t1 - t0));
	kprintf("hostile: %s status=0x%x\n", name, status);

	hostile_recover(block);
}

/* A driver that breaks its device again and again (a report outside RAM, then a reset): each time
 * round Ebb says the device needs a reset and the driver is ready again. What Ebb prints must stay
 * bounded (GuestReportLimits) and the device must still come back. */
static void hostile_flood(const struct kernel_state *k)
{
	uint32_t rounds = (uint32_t)option_u64("ebb.repeat", 40), broke = 0;
	if (!start(k, "hostile", NULL))
		return;
	uint64_t block = pool_first_block();
	if (!B.has_reporting || B.reporting.size == 0 || !block) {
		kprintf("hostile: reporting not available\n");
		return;
	}
	for (uint32_t i = 0; i < rounds; i++) {
		if (i > 0 && !balloon_init(NULL)) {
			kprintf("hostile: not recovered\n");
			return;
		}
		struct virtq *vq = &B.reporting;
		uint16_t h = vq->free_head;
		vq->desc[h] = (struct virtq_desc){ HOSTILE_OUTSIDE_ADDR, (uint32_t)LARGE_PAGE, VIRTQ_DESC_F_WRITE, 0 };
		virtq_publish(vq, h, 1);
		vm_write32(&B.dev, VIRTIO_MMIO_QUEUE_NOTIFY, vq->index);
		uint64_t t0 = rdtsc(), budget = tsc_from_ms(HOSTILE_CHECK_MS);
		while (!(virtio_get_status(&B.dev) & VIRTIO_STATUS_NEEDS_RESET) && rdtsc() - t0 <= budget)
			cpu_relax();
		if (virtio_get_status(&B.dev) & VIRTIO_STATUS_NEEDS_RESET)
			broke++;
	}
	kprintf("hostile: flood broke=%u of %u\n", broke, rounds);
	hostile_recover(block);
}

static void hostile_loop(const struct kernel_state *k) { hostile(k, HOSTILE_LOOP); }
static void hostile_outside(const struct kernel_state *k) { hostile(k, HOSTILE_OUTSIDE); }
static void hostile_unaligned(const struct kernel_state *k) { hostile(k, HOSTILE_UNALIGNED); }
static void hostile_huge(const struct kernel_state *k) { hostile(k, HOSTILE_HUGE); }
static void hostile_wrap(const struct kernel_state *k) { hostile(k, HOSTILE_WRAP); }
static void hostile_next(const struct kernel_state *k) { hostile(k, HOSTILE_NEXT); }
static void hostile_early(const struct kernel_state *k) { hostile(k, HOSTILE_EARLY); }
static void hostile_ring(const struct kernel_state *k) { hostile(k, HOSTILE_RING); }

const struct scenario balloon_scenarios[] = {
	{ "virtio", scenario_virtio },
	{ "mmio-latency", scenario_mmio_latency },
	{ "reclaim", scenario_reclaim },
	{ "balloon", scenario_balloon },
	{ "stats", scenario_stats },
	{ "cache", scenario_cache },
	{ "hostile-loop", hostile_loop },
	{ "hostile-outside", hostile_outside },
	{ "hostile-unaligned", hostile_unaligned },
	{ "hostile-huge", hostile_huge },
	{ "hostile-wrap", hostile_wrap },
	{ "hostile-next", hostile_next },
	{ "hostile-early", hostile_early },
	{ "hostile-ring", hostile_ring },
	{ "hostile-flood", hostile_flood },
};
const size_t balloon_scenario_count = ARRAY_SIZE(balloon_scenarios);
