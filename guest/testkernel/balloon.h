/*
 * The virtio-balloon driver (balloon.c) and its scenarios
 * (balloon_scenarios.c): what they share.
 */
#ifndef EBB_BALLOON_H
#define EBB_BALLOON_H

#include "virtio.h"

#define VIRTIO_BALLOON_DEVICE_ID        5

/* Feature bits (virtio 1.2 section 5.5.3). */
#define VIRTIO_BALLOON_F_MUST_TELL_HOST 0
#define VIRTIO_BALLOON_F_STATS_VQ       1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2
#define VIRTIO_BALLOON_F_FREE_PAGE_HINT 3
#define VIRTIO_BALLOON_F_PAGE_POISON    4
#define VIRTIO_BALLOON_F_REPORTING      5

/* Config space offsets. */
#define BALLOON_CFG_NUM_PAGES           0x00
#define BALLOON_CFG_ACTUAL              0x04
#define BALLOON_CFG_FREE_PAGE_HINT_CMD  0x08
#define BALLOON_CFG_POISON_VAL          0x0c

/* Stats tags. */
#define VIRTIO_BALLOON_S_SWAP_IN        0
#define VIRTIO_BALLOON_S_SWAP_OUT       1
#define VIRTIO_BALLOON_S_MAJFLT         2
#define VIRTIO_BALLOON_S_MINFLT         3
#define VIRTIO_BALLOON_S_MEMFREE        4
#define VIRTIO_BALLOON_S_MEMTOT         5
#define VIRTIO_BALLOON_S_AVAIL          6
#define VIRTIO_BALLOON_S_CACHES         7
#define BALLOON_STATS_COUNT             8

#define BALLOON_PAGE_SHIFT              12
#define BALLOON_PAGE_SIZE               4096ull
#define BALLOON_PFNS_PER_BUFFER         256     /* VIRTIO_BALLOON_ARRAY_PFNS_MAX */
#define REPORT_CAPACITY                 32      /* PAGE_REPORTING_CAPACITY */
#define BALLOON_QUEUE_SIZE              64      /* what we ask for, at most */
#define REPORTING_ORDER_DEFAULT         9       /* pageblock_order on x86: 2 MiB */

struct __attribute__((packed)) balloon_stat {
	uint16_t tag;
	uint64_t val;
};

/* Usable RAM above the kernel and below 4 GiB, in ascending address order. */
struct pool_range {
	uint64_t start, end;            /* page aligned */
};

struct balloon {
	struct virtio_mmio dev;
	bool has_stats, has_reporting, deflate_on_oom;
	bool reporting_usable;          /* negotiated and the queue has >= 32 entries */
	struct virtq inflate, deflate, stats, reporting;
	struct balloon_stat stats_buf[BALLOON_STATS_COUNT];
	uint32_t pfns[BALLOON_PFNS_PER_BUFFER];
	uint64_t stats_refills;
	bool config_changed;            /* InterruptStatus bit 1 seen, not yet handled */

	/* Memory accounting. */
	uint64_t ram_bytes;             /* all e820 RAM */
	struct pool_range pool[E820_MAX];
	uint32_t pool_count;
	uint64_t pool_pages;
	uint64_t balloon_pages;         /* the top balloon_pages pages of the pool */
	uint64_t busy_pages;            /* pages a scenario is using (touched, not yet freed) */
	uint64_t cache_pages;           /* page cache model: the pages above busy_pages; the balloon evicts them */
};

/* Hooks for the hostile scenarios into device initialization. */
struct balloon_init_opts {
	uint64_t reporting_desc_addr;   /* non-zero: QueueDesc for the reporting queue */
	bool report_before_driver_ok;   /* stop before DRIVER_OK (the caller posts a report) */
};

extern struct balloon B;

/* Budgets, in ms unless the caller says. */
#define BALLOON_RESET_MS        1000
#define BALLOON_USED_MS_DEFAULT 5000

void balloon_setup(const struct kernel_state *k, const char *tag);
const char *balloon_tag(void);
__attribute__((noreturn)) void balloon_timeout(const char *what);
uint64_t option_u64(const char *key, uint64_t def);
uint64_t used_budget_ms(void);

bool balloon_find(void);
bool balloon_init(const struct balloon_init_opts *opts);
/* One line (features, queue sizes), or the virtio scenario's detailed lines. */
void balloon_print(bool detailed);
void balloon_pool_init(void);
uint64_t pool_pfn(uint64_t index);

/* Service the device: ack interrupts, note config changes, refill stats. */
void balloon_poll(void);
void balloon_fill_stats(void);
bool wait_used(struct virtq *vq, uint64_t budget_ms, uint32_t *len);

/* Follow num_pages (inflate/deflate in 256-page buffers, writing actual after each). */
void balloon_follow_target(void);
uint32_t balloon_read_target(void);

/* One free page report: a chain of n device-writable blocks; waits for it to be used. */
bool balloon_report(const uint64_t *addrs, uint32_t block_bytes, unsigned n, uint64_t budget_ms);

#endif
