/*
 * A polled virtio-net driver (virtio 1.2 section 5.1) and its scenario,
 * "ebb.scenario=net-echo": the guest has the address ebb.ip (10.0.2.15 by
 * default), answers ARP requests and ICMP echo requests for it, checks every
 * checksum it receives, and ends when a frame of EtherType 0x88b5 (IEEE's
 * local experimental type) says "ebb-stop", or after ebb.hold seconds.
 * ebb.net_hostile=1 first sends what no sane driver sends (chains the device
 * may not accept, headers it never offered, a ring that breaks the device),
 * then resets the device and answers as usual: the host's test checks that
 * the NIC still works.
 */
#include "balloon.h"
#include "io.h"

#define VIRTIO_NET_DEVICE_ID    1
#define VIRTIO_NET_F_MTU        3
#define VIRTIO_NET_F_MAC        5
#define VIRTIO_NET_F_MRG_RXBUF  15
#define VIRTIO_NET_F_STATUS     16

#define NET_HDR_BYTES           12
#define RX_BUFFERS              32
#define RX_BUFFER_BYTES         2048
#define TX_BUFFER_BYTES         (NET_HDR_BYTES + 1514)
#define NET_RESET_MS            1000
#define ETHERTYPE_ARP           0x0806
#define ETHERTYPE_IPV4          0x0800
#define ETHERTYPE_EBB           0x88b5

static struct virtio_mmio D;
static struct virtq RX, TX;
static uint64_t features;
static uint8_t mac[6] = { 0x02, 0xeb, 0xb0, 0x00, 0x00, 0x01 };
static uint8_t ip[4] = { 10, 0, 2, 15 };
static uint16_t mtu = 1500;
static uint8_t rx_page[4096] __attribute__((aligned(4096)));
static uint8_t tx_page[4096] __attribute__((aligned(4096)));
static uint8_t rx_buffers[RX_BUFFERS][RX_BUFFER_BYTES] __attribute__((aligned(4096)));
static uint8_t tx_buffer[TX_BUFFER_BYTES] __attribute__((aligned(64)));
static uint8_t big_buffer[80 * 1024] __attribute__((aligned(4096)));
static int16_t rx_slot_of_head[VIRTQ_MAX_SIZE];

static struct {
	uint32_t frames, arp, icmp, replies, bad_checksum, other, multi_buffer, short_frames, tx_timeouts;
} stats;

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

/* The Internet checksum (RFC 1071) of n bytes; 0 when a packet with its checksum in place is intact. */
static uint16_t inet_checksum(const uint8_t *p, uint32_t n)
{
	uint32_t sum = 0;
	for (uint32_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void post_rx(int slot)
{
	struct virtq_buf b = { (uint64_t)(uintptr_t)rx_buffers[slot], RX_BUFFER_BYTES, true };
	int head = virtq_add(&RX, &b, 1);
	if (head >= 0)
		rx_slot_of_head[head] = (int16_t)slot;
}

static bool net_init(void)
{
	if (!virtio_reset(&D, tsc_from_ms(NET_RESET_MS))) {
		kprintf("net: timeout waiting for reset (status 0x%x)\n", virtio_get_status(&D));
		return false;
	}
	uint64_t want = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_MTU) | (1ull << VIRTIO_NET_F_MAC) |
			(1ull << VIRTIO_NET_F_MRG_RXBUF) | (1ull << VIRTIO_NET_F_STATUS);
	features = virtio_negotiate(&D, want, "net");
	if (!features)
		return false;
	if (features & (1ull << VIRTIO_NET_F_MAC)) {
		uint32_t lo = virtio_config_read32(&D, 0), hi = virtio_config_read32(&D, 4);
		for (int i = 0; i < 4; i++)
			mac[i] = (uint8_t)(lo >> (8 * i));
		mac[4] = (uint8_t)hi;
		mac[5] = (uint8_t)(hi >> 8);
	}
	if (features & (1ull << VIRTIO_NET_F_MTU))
		mtu = (uint16_t)(virtio_config_read32(&D, 8) >> 16);
	if (!virtq_setup(&D, &RX, 0, VIRTQ_MAX_SIZE, (uint64_t)(uintptr_t)rx_page, 0) ||
	    !virtq_setup(&D, &TX, 1, VIRTQ_MAX_SIZE, (uint64_t)(uintptr_t)tx_page, 0)) {
		kprintf("net: queues not set up (QueueNumMax %u, %u)\n", RX.num_max, TX.num_max);
		return false;
	}
	for (int i = 0; i < RX_BUFFERS && RX.num_free > 0; i++)
		post_rx(i);
	virtio_add_status(&D, VIRTIO_STATUS_DRIVER_OK);
	virtq_kick(&D, &RX);
	return true;
}

/* Sends a chain on the transmit queue and waits (bounded) for it to come back. */
static bool tx_chain(const struct virtq_buf *bufs, unsigned n)
{
	if (virtq_add(&TX, bufs, n) < 0)
		return false;
	virtq_kick(&D, &TX);
	uint64_t t0 = rdtsc(), budget = tsc_from_ms(used_budget_ms());
	uint16_t head;
	uint32_t len;
	while (!virtq_get_used(&TX, &head, &len)) {
		if (rdtsc() - t0 > budget) {
			stats.tx_timeouts++;
			return false;
		}
		cpu_relax();
	}
	return true;
}

static void tx_frame(uint32_t frame_bytes)
{
	memset(tx_buffer, 0, NET_HDR_BYTES);
	/* Header and frame as two descriptors, as Linux sends them without ANY_LAYOUT tricks. */
	struct virtq_buf bufs[2] = {
		{ (uint64_t)(uintptr_t)tx_buffer, NET_HDR_BYTES, false },
		{ (uint64_t)(uintptr_t)tx_buffer + NET_HDR_BYTES, frame_bytes, false },
	};
	if (tx_chain(bufs, 2))
		stats.replies++;
}

static void answer_arp(const uint8_t *f, uint32_t n)
{
	if (n < 42 || be16(f + 14) != 1 || be16(f + 16) != ETHERTYPE_IPV4 || f[18] != 6 || f[19] != 4 ||
	    be16(f + 20) != 1 || memcmp(f + 38, ip, 4) != 0)
		return;
	stats.arp++;
	uint8_t *r = tx_buffer + NET_HDR_BYTES;
	memcpy(r, f + 6, 6);
	memcpy(r + 6, mac, 6);
	put_be16(r + 12, ETHERTYPE_ARP);
	memcpy(r + 14, f + 14, 6);
	put_be16(r + 20, 2);
	memcpy(r + 22, mac, 6);
	memcpy(r + 28, ip, 4);
	memcpy(r + 32, f + 22, 10);     /* the sender's MAC and IP become the target */
	tx_frame(42);
}

static void answer_ipv4(const uint8_t *f, uint32_t n)
{
	if (n < 34)
		return;
	const uint8_t *h = f + 14;
	uint32_t ihl = (uint32_t)(h[0] & 15) * 4, total = be16(h + 2);
	if ((h[0] >> 4) != 4 || ihl < 20 || total < ihl || 14 + total > n)
		return;
	if (inet_checksum(h, ihl) != 0) {
		stats.bad_checksum++;
		return;
	}
	if (h[9] != 1 || memcmp(h + 16, ip, 4) != 0 || total - ihl < 8 || h[ihl] != 8)
		return;
	if (inet_checksum(h + ihl, total - ihl) != 0) {
		stats.bad_checksum++;
		return;
	}
	stats.icmp++;
	uint8_t *r = tx_buffer + NET_HDR_BYTES;
	memcpy(r, f + 6, 6);
	memcpy(r + 6, mac, 6);
	memcpy(r + 12, f + 12, 2 + total);
	uint8_t *rh = r + 14;
	memcpy(rh + 12, h + 16, 4);
	memcpy(rh + 16, h + 12, 4);
	rh[8] = 64;
	rh[10] = rh[11] = 0;
	put_be16(rh + 10, inet_checksum(rh, ihl));
	rh[ihl] = 0;                    /* echo reply */
	rh[ihl + 2] = rh[ihl + 3] = 0;
	put_be16(rh + ihl + 2, inet_checksum(rh + ihl, total - ihl));
	tx_frame(14 + total);
}

/* One received frame; returns false when it says stop. */
static bool handle_frame(const uint8_t *f, uint32_t n)
{
	stats.frames++;
	if (n < 14) {
		stats.short_frames++;
		return true;
	}
	switch (be16(f + 12)) {
	case ETHERTYPE_ARP:
		answer_arp(f, n);
		break;
	case ETHERTYPE_IPV4:
		answer_ipv4(f, n);
		break;
	case ETHERTYPE_EBB:
		if (n >= 22 && memcmp(f + 14, "ebb-stop", 8) == 0)
			return false;
		stats.other++;
		break;
	default:
		stats.other++;
	}
	return true;
}

static void serve(uint64_t hold_ms)
{
	uint64_t t0 = rdtsc(), budget = tsc_from_ms(hold_ms);
	for (;;) {
		uint16_t head;
		uint32_t len;
		if (virtq_get_used(&RX, &head, &len)) {
			int slot = rx_slot_of_head[head];
			const uint8_t *b = rx_buffers[slot];
			bool go_on = true;
			if (len < NET_HDR_BYTES || len > RX_BUFFER_BYTES) {
				stats.short_frames++;
			} else {
				if (get_le16(b + 10) != 1)
					stats.multi_buffer++;
				go_on = handle_frame(b + NET_HDR_BYTES, len - NET_HDR_BYTES);
			}
			post_rx(slot);
			virtq_kick(&D, &RX);
			virtio_ack_interrupts(&D);
			if (!go_on) {
				kprintf("net: stop frame\n");
				return;
			}
			continue;
		}
		if (rdtsc() - t0 > budget) {
			kprintf("net: hold over\n");
			return;
		}
		cpu_relax();
	}
}

/*
 * What no sane driver sends, each answered by dropping the frame or returning
 * the buffer; then a ring that breaks the device, which the driver resets.
 */
static void hostile(void)
{
	memset(tx_buffer, 0, sizeof(tx_buffer));
	struct virtq_buf writable[2] = {
		{ (uint64_t)(uintptr_t)tx_buffer, NET_HDR_BYTES, false },
		{ (uint64_t)(uintptr_t)tx_buffer + NET_HDR_BYTES, 60, true },
	};
	struct virtq_buf runt = { (uint64_t)(uintptr_t)tx_buffer, 6, false };
	struct virtq_buf huge = { (uint64_t)(uintptr_t)big_buffer, sizeof(big_buffer), false };
	bool a = tx_chain(writable, 2), b = tx_chain(&runt, 1), c = tx_chain(&huge, 1);
	/* A header asking for UDP fragmentation, never offered. */
	tx_buffer[1] = 3;
	struct virtq_buf ufo[2] = {
		{ (uint64_t)(uintptr_t)tx_buffer, NET_HDR_BYTES, false },
		{ (uint64_t)(uintptr_t)tx_buffer + NET_HDR_BYTES, 60, false },
	};
	bool d = tx_chain(ufo, 2);
	kprintf("net-hostile: writable-tx=%s runt=%s oversized=%s ufo=%s\n", a ? "returned" : "lost", b ? "returned" : "lost",
		c ? "returned" : "lost", d ? "returned" : "lost");
	/* The ring itself: avail idx far ahead of what the queue holds. */
	TX.avail->idx = (uint16_t)(TX.avail_idx + 1000);
	vm_write32(&D, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	uint64_t t0 = rdtsc();
	while (!(virtio_get_status(&D) & VIRTIO_STATUS_NEEDS_RESET) && rdtsc() - t0 < tsc_from_ms(2000))
		cpu_relax();
	kprintf("net-hostile: bad avail idx status=0x%x needs-reset=%d\n", virtio_get_status(&D),
		virtio_get_status(&D) & VIRTIO_STATUS_NEEDS_RESET ? 1 : 0);
}

static bool parse_ip(const char *s, uint8_t out[4])
{
	uint32_t part = 0, parts = 0;
	bool digit = false;
	for (;; s++) {
		if (*s >= '0' && *s <= '9') {
			part = part * 10 + (uint32_t)(*s - '0');
			digit = true;
			if (part > 255)
				return false;
		} else if ((*s == '.' || *s == 0) && digit && parts < 4) {
			out[parts++] = (uint8_t)part;
			part = 0;
			digit = false;
			if (*s == 0)
				return parts == 4;
		} else {
			return false;
		}
	}
}

static void scenario_echo(const struct kernel_state *k)
{
	balloon_setup(k, "net");
	char text[32];
	if (cmdline_get(k->boot->cmdline, "ebb.ip", text, sizeof(text)) && !parse_ip(text, ip)) {
		kprintf("net: ebb.ip=%s is not an IPv4 address\n", text);
		return;
	}
	memset(&D, 0, sizeof(D));
	if (!virtio_find(k->acpi, VIRTIO_NET_DEVICE_ID, &D)) {
		kprintf("net: no NIC (LNRO0005 with device id 1, version 2)\n");
		return;
	}
	if (!net_init())
		return;
	if (option_u64("ebb.net_hostile", 0)) {
		hostile();
		if (!net_init())
			return;
		kprintf("net-hostile: reset and set up again\n");
	}
	kprintf("net: ready mac=%x:%x:%x:%x:%x:%x ip=%u.%u.%u.%u mtu=%u features=0x%lx\n", mac[0], mac[1], mac[2], mac[3],
		mac[4], mac[5], ip[0], ip[1], ip[2], ip[3], mtu, features);
	serve(option_u64("ebb.hold", 120) * 1000);
	kprintf("net: done frames=%u arp=%u icmp=%u replies=%u bad-checksum=%u other=%u multi-buffer=%u short=%u tx-timeouts=%u\n",
		stats.frames, stats.arp, stats.icmp, stats.replies, stats.bad_checksum, stats.other, stats.multi_buffer,
		stats.short_frames, stats.tx_timeouts);
}

const struct scenario net_scenarios[] = {
	{ "net-echo", scenario_echo },
};
const size_t net_scenario_count = ARRAY_SIZE(net_scenarios);
