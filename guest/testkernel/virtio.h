/*
 * virtio over MMIO, register layout version 2 (virtio 1.2 section 4.2.2),
 * and split virtqueues (section 2.7), polled: the driver reads
 * InterruptStatus and acks what it sees instead of taking the interrupt.
 */
#ifndef EBB_VIRTIO_H
#define EBB_VIRTIO_H

#include "kernel.h"

/* Registers. */
#define VIRTIO_MMIO_MAGIC               0x000
#define VIRTIO_MMIO_VERSION             0x004
#define VIRTIO_MMIO_DEVICE_ID           0x008
#define VIRTIO_MMIO_VENDOR_ID           0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES     0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES     0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL           0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX       0x034
#define VIRTIO_MMIO_QUEUE_NUM           0x038
#define VIRTIO_MMIO_QUEUE_READY         0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY        0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS    0x060
#define VIRTIO_MMIO_INTERRUPT_ACK       0x064
#define VIRTIO_MMIO_STATUS              0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW      0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH     0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW    0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH   0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW    0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH   0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION   0x0fc
#define VIRTIO_MMIO_CONFIG              0x100

#define VIRTIO_MMIO_MAGIC_VALUE         0x74726976      /* "virt" */

/* Status bits. */
#define VIRTIO_STATUS_ACKNOWLEDGE       0x01
#define VIRTIO_STATUS_DRIVER            0x02
#define VIRTIO_STATUS_DRIVER_OK         0x04
#define VIRTIO_STATUS_FEATURES_OK       0x08
#define VIRTIO_STATUS_NEEDS_RESET       0x40
#define VIRTIO_STATUS_FAILED            0x80

/* InterruptStatus bits. */
#define VIRTIO_INT_USED_BUFFER          0x1
#define VIRTIO_INT_CONFIG               0x2

#define VIRTIO_F_VERSION_1              32

/* Split virtqueue layout. */
#define VIRTQ_DESC_F_NEXT               1
#define VIRTQ_DESC_F_WRITE              2
#define VIRTQ_DESC_F_INDIRECT           4
#define VIRTQ_USED_F_NO_NOTIFY          1

#define VIRTQ_MAX_SIZE                  64      /* desc 1 KiB, avail 134 B, used 518 B: one page */
#define VIRTQ_AVAIL_OFFSET              1024
#define VIRTQ_USED_OFFSET               2048

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];        /* then le16 used_event */
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct virtq_used {
	uint16_t flags;
	uint16_t idx;
	struct virtq_used_elem ring[];  /* then le16 avail_event */
};

struct virtio_mmio {
	uint64_t base;
	uint32_t irq;
	uint32_t version, device_id, vendor_id;
	uint64_t device_features;
	uint64_t driver_features;
};

/* One buffer of a descriptor chain. */
struct virtq_buf {
	uint64_t addr;
	uint32_t len;
	bool device_writable;
};

struct virtq {
	uint32_t index;                 /* the device's queue number */
	uint16_t size;                  /* 0: not set up */
	uint32_t num_max;               /* the device's QueueNumMax */
	uint64_t mem;                   /* one page: desc, avail, used */
	volatile struct virtq_desc *desc;
	volatile struct virtq_avail *avail;
	volatile struct virtq_used *used;
	uint16_t free_head;             /* free descriptors are chained through next */
	uint16_t num_free;
	uint16_t avail_idx;             /* our copy of avail->idx */
	uint16_t last_used;             /* the next used entry to take */
	uint16_t chain_len[VIRTQ_MAX_SIZE];     /* by head: descriptors in that chain */
	uint32_t kicks;                 /* QueueNotify writes */
	uint32_t kicks_suppressed;      /* notifications the device asked us to skip */
};

uint32_t vm_read32(const struct virtio_mmio *d, uint32_t off);
void vm_write32(const struct virtio_mmio *d, uint32_t off, uint32_t v);

/* Probe the LNRO0005 devices of the DSDT for device_id; prints why each other one was passed over. */
bool virtio_find(const struct acpi_info *acpi, uint32_t device_id, struct virtio_mmio *out);
/* Status 0, then wait (bounded) for the device to read back 0. */
bool virtio_reset(const struct virtio_mmio *d, uint64_t budget_cycles);
uint32_t virtio_get_status(const struct virtio_mmio *d);
void virtio_add_status(const struct virtio_mmio *d, uint32_t bits);
uint64_t virtio_read_device_features(struct virtio_mmio *d);
/*
 * After a reset: ACKNOWLEDGE, DRIVER, the device's features (VERSION_1 required, else FAILED),
 * the offered ones of `want` written back and FEATURES_OK checked. Returns the negotiated
 * features, or 0 after saying why on a line starting with `tag`.
 */
uint64_t virtio_negotiate(struct virtio_mmio *d, uint64_t want, const char *tag);
void virtio_write_driver_features(struct virtio_mmio *d, uint64_t features);
/*
 * Set up queue `index` in the page at `mem`, Linux's vm_setup_vq order:
 * QueueSel, QueueReady must read 0, QueueNumMax (0: no such queue), QueueNum,
 * Desc/Driver/Device Low+High, QueueReady = 1. The size is the largest power
 * of two <= min(QueueNumMax, cap). The descriptor table address may be
 * overridden (desc_addr != 0) to test a device's checks. On failure
 * vq->size is 0 and vq->num_max says what the device offered.
 */
bool virtq_setup(const struct virtio_mmio *d, struct virtq *vq, uint32_t index, uint16_t cap,
		 uint64_t mem, uint64_t desc_addr_override);
/* Put a chain in the descriptor table and the avail ring; returns the head or -1 if full. */
int virtq_add(struct virtq *vq, const struct virtq_buf *bufs, unsigned n);
/* Put head in the next avail ring slot and move avail->idx on by `advance` (1 for a real driver). */
void virtq_publish(struct virtq *vq, uint16_t head, uint16_t advance);
/* Notify unless the device set VIRTQ_USED_F_NO_NOTIFY (what Linux's virtqueue_kick does). */
void virtq_kick(const struct virtio_mmio *d, struct virtq *vq);
/* Take one used entry, freeing its chain. */
bool virtq_get_used(struct virtq *vq, uint16_t *head, uint32_t *len);
bool virtq_has_used(const struct virtq *vq);
/* Read and ack InterruptStatus; returns what was seen. */
uint32_t virtio_ack_interrupts(const struct virtio_mmio *d);
/* 32-bit config read inside the ConfigGeneration loop. */
uint32_t virtio_config_read32(const struct virtio_mmio *d, uint32_t off);
void virtio_config_write32(const struct virtio_mmio *d, uint32_t off, uint32_t v);

#endif
