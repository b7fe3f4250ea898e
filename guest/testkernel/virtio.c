/*
 * virtio-mmio transport (version 2 only) and split virtqueues, written to
 * do what Linux's drivers/virtio/virtio_mmio.c and virtio_ring.c do, in the
 * same order of register accesses, minus interrupts: the caller polls.
 */
#include "virtio.h"
#include "io.h"

#define CONFIG_GENERATION_TRIES 16

static inline void mb(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static inline void barrier(void)
{
	__asm__ volatile("" ::: "memory");
}

uint32_t vm_read32(const struct virtio_mmio *d, uint32_t off)
{
	return mmio_read32(d->base + off);
}

void vm_write32(const struct virtio_mmio *d, uint32_t off, uint32_t v)
{
	mmio_write32(d->base + off, v);
}

bool virtio_find(const struct acpi_info *acpi, uint32_t device_id, struct virtio_mmio *out)
{
	for (uint32_t i = 0; i < acpi->device_count; i++) {
		const struct acpi_device *ad = &acpi->devices[i];
		if (strcmp(ad->hid, "LNRO0005") != 0)
			continue;
		if (!ad->have_mem || ad->mem_size < VIRTIO_MMIO_CONFIG || ad->mem_base == 0 ||
		    (uint64_t)ad->mem_base + ad->mem_size > 0x100000000ull) {
			kprintf("virtio: LNRO0005 without a usable Memory32Fixed window, skipped\n");
			continue;
		}
		struct virtio_mmio d = { 0 };
		d.base = ad->mem_base;
		d.irq = ad->have_irq ? ad->irq : 0;
		/* vm_probe's order: magic, version, device id, vendor id. */
		uint32_t magic = vm_read32(&d, VIRTIO_MMIO_MAGIC);
		if (magic != VIRTIO_MMIO_MAGIC_VALUE) {
			kprintf("virtio: 0x%lx: bad magic 0x%x\n", d.base, magic);
			continue;
		}
		d.version = vm_read32(&d, VIRTIO_MMIO_VERSION);
		d.device_id = vm_read32(&d, VIRTIO_MMIO_DEVICE_ID);
		if (d.device_id == 0)
			continue;       /* an empty slot */
		d.vendor_id = vm_read32(&d, VIRTIO_MMIO_VENDOR_ID);
		if (d.device_id != device_id)
			continue;
		if (d.version != 2) {
			kprintf("virtio: 0x%lx: device id=%u has register layout version %u, only 2 is supported\n",
				d.base, d.device_id, d.version);
			continue;
		}
		*out = d;
		return true;
	}
	return false;
}

uint32_t virtio_get_status(const struct virtio_mmio *d)
{
	return vm_read32(d, VIRTIO_MMIO_STATUS);
}

bool virtio_reset(const struct virtio_mmio *d, uint64_t budget_cycles)
{
	vm_write32(d, VIRTIO_MMIO_STATUS, 0);
	uint64_t t0 = rdtsc();
	while (vm_read32(d, VIRTIO_MMIO_STATUS) != 0) {
		if (rdtsc() - t0 > budget_cycles)
			return false;
		cpu_relax();
	}
	return true;
}

void virtio_add_status(const struct virtio_mmio *d, uint32_t bits)
{
	vm_write32(d, VIRTIO_MMIO_STATUS, vm_read32(d, VIRTIO_MMIO_STATUS) | bits);
}

uint64_t virtio_read_device_features(struct virtio_mmio *d)
{
	vm_write32(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	uint64_t f = (uint64_t)vm_read32(d, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
	vm_write32(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	f |= vm_read32(d, VIRTIO_MMIO_DEVICE_FEATURES);
	d->device_features = f;
	return f;
}

uint64_t virtio_negotiate(struct virtio_mmio *d, uint64_t want, const char *tag)
{
	virtio_add_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
	virtio_add_status(d, VIRTIO_STATUS_DRIVER);
	uint64_t offered = virtio_read_device_features(d);
	if (!(offered & (1ull << VIRTIO_F_VERSION_1))) {
		kprintf("%s: features 0x%lx without VERSION_1: refused\n", tag, offered);
		virtio_add_status(d, VIRTIO_STATUS_FAILED);
		return 0;
	}
	uint64_t features = offered & want;
	virtio_write_driver_features(d, features);
	virtio_add_status(d, VIRTIO_STATUS_FEATURES_OK);
	if (!(virtio_get_status(d) & VIRTIO_STATUS_FEATURES_OK)) {
		kprintf("%s: device refused features 0x%lx\n", tag, features);
		return 0;
	}
	return features;
}

void virtio_write_driver_features(struct virtio_mmio *d, uint64_t features)
{
	vm_write32(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	vm_write32(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	vm_write32(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	vm_write32(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	d->driver_features = features;
}

bool virtq_setup(const struct virtio_mmio *d, struct virtq *vq, uint32_t index, uint16_t cap,
		 uint64_t mem, uint64_t desc_addr_override)
{
	memset(vq, 0, sizeof(*vq));
	vq->index = index;
	vm_write32(d, VIRTIO_MMIO_QUEUE_SEL, index);
	if (vm_read32(d, VIRTIO_MMIO_QUEUE_READY) != 0) {
		kprintf("virtio: queue %u is already ready\n", index);
		return false;
	}
	uint32_t max = vm_read32(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
	vq->num_max = max;
	uint32_t limit = max < cap ? max : cap;
	if (limit > VIRTQ_MAX_SIZE)
		limit = VIRTQ_MAX_SIZE;
	uint16_t size = 0;
	for (uint32_t p = 1; p <= limit; p <<= 1)
		size = (uint16_t)p;
	if (size == 0)
		return false;

	memset((void *)(uintptr_t)mem, 0, 4096);
	vq->size = size;
	vq->mem = mem;
	vq->desc = (volatile struct virtq_desc *)(uintptr_t)mem;
	vq->avail = (volatile struct virtq_avail *)(uintptr_t)(mem + VIRTQ_AVAIL_OFFSET);
	vq->used = (volatile struct virtq_used *)(uintptr_t)(mem + VIRTQ_USED_OFFSET);
	/* All descriptors free, chained in order (as vring_init_split leaves them). */
	for (uint16_t i = 0; i + 1 < size; i++)
		vq->desc[i].next = (uint16_t)(i + 1);
	vq->free_head = 0;
	vq->num_free = size;

	uint64_t desc = desc_addr_override ? desc_addr_override : mem;
	uint64_t avail = mem + VIRTQ_AVAIL_OFFSET, used = mem + VIRTQ_USED_OFFSET;
	vm_write32(d, VIRTIO_MMIO_QUEUE_NUM, size);
	vm_write32(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	vm_write32(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	vm_write32(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)avail);
	vm_write32(d, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(avail >> 32));
	vm_write32(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)used);
	vm_write32(d, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(used >> 32));
	vm_write32(d, VIRTIO_MMIO_QUEUE_READY, 1);
	return true;
}

int virtq_add(struct virtq *vq, const struct virtq_buf *bufs, unsigned n)
{
	if (n == 0 || n > vq->num_free)
		return -1;
	uint16_t head = vq->free_head, i = head, last = head;
	for (unsigned k = 0; k < n; k++) {
		volatile struct virtq_desc *dsc = &vq->desc[i];
		dsc->addr = bufs[k].addr;
		dsc->len = bufs[k].len;
		dsc->flags = (uint16_t)((bufs[k].device_writable ? VIRTQ_DESC_F_WRITE : 0) |
					(k + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
		last = i;
		i = dsc->next;
	}
	/* The last descriptor's next still links to the rest of the free list. */
	vq->free_head = vq->desc[last].next;
	vq->num_free = (uint16_t)(vq->num_free - n);
	vq->chain_len[head] = (uint16_t)n;
	virtq_publish(vq, head, 1);
	return head;
}

void virtq_publish(struct virtq *vq, uint16_t head, uint16_t advance)
{
	vq->avail->ring[vq->avail_idx & (vq->size - 1)] = head;
	barrier();      /* x86 keeps stores in order; the compiler must too */
	vq->avail_idx = (uint16_t)(vq->avail_idx + advance);
	vq->avail->idx = vq->avail_idx;
}

void virtq_kick(const struct virtio_mmio *d, struct virtq *vq)
{
	/* The avail idx store must be visible before the used flags are read. */
	mb();
	if (vq->used->flags & VIRTQ_USED_F_NO_NOTIFY) {
		vq->kicks_suppressed++;
		return;
	}
	vm_write32(d, VIRTIO_MMIO_QUEUE_NOTIFY, vq->index);
	vq->kicks++;
}

bool virtq_has_used(const struct virtq *vq)
{
	return vq->size && vq->used->idx != vq->last_used;
}

bool virtq_get_used(struct virtq *vq, uint16_t *head, uint32_t *len)
{
	if (!virtq_has_used(vq))
		return false;
	barrier();      /* read the entry only after seeing the index */
	volatile struct virtq_used_elem *e = &vq->used->ring[vq->last_used & (vq->size - 1)];
	uint32_t id = e->id, l = e->len;
	vq->last_used++;
	if (id >= vq->size || vq->chain_len[id] == 0) {
		kprintf("virtio: queue %u: device used unknown head %u\n", vq->index, id);
		return false;
	}
	/* Give the chain back to the free list, as detach_buf_split does. */
	uint16_t n = vq->chain_len[id], last = (uint16_t)id;
	for (uint16_t k = 1; k < n; k++)
		last = vq->desc[last].next;
	vq->desc[last].next = vq->free_head;
	vq->free_head = (uint16_t)id;
	vq->num_free = (uint16_t)(vq->num_free + n);
	vq->chain_len[id] = 0;
	*head = (uint16_t)id;
	*len = l;
	return true;
}

uint32_t virtio_ack_interrupts(const struct virtio_mmio *d)
{
	uint32_t s = vm_read32(d, VIRTIO_MMIO_INTERRUPT_STATUS);
	if (s)
		vm_write32(d, VIRTIO_MMIO_INTERRUPT_ACK, s);
	return s;
}

uint32_t virtio_config_read32(const struct virtio_mmio *d, uint32_t off)
{
	uint32_t v = 0;
	for (int i = 0; i < CONFIG_GENERATION_TRIES; i++) {
		uint32_t g = vm_read32(d, VIRTIO_MMIO_CONFIG_GENERATION);
		v = vm_read32(d, VIRTIO_MMIO_CONFIG + off);
		if (vm_read32(d, VIRTIO_MMIO_CONFIG_GENERATION) == g)
			break;
	}
	return v;
}

void virtio_config_write32(const struct virtio_mmio *d, uint32_t off, uint32_t v)
{
	vm_write32(d, VIRTIO_MMIO_CONFIG + off, v);
}
