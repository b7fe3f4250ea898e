/*
 * A pattern scan of DSDT AML bytes, not an interpreter. It finds
 *   Device (XXXX) { Name (_HID, "STRING" or EisaId) ... Name (_CRS, Buffer) }
 * and decodes the resource descriptors in the _CRS buffer, and finds
 *   Name (_S5_, Package () { SLP_TYPa, ... })
 * Every read goes through a bounds check against the enclosing object's end,
 * itself never past the table length, so garbage AML cannot make us read
 * outside the table. Devices whose _HID or _CRS are methods are not seen.
 */
#include "kernel.h"

#define AML_HDR_LEN     36      /* AML starts after the ACPI table header */
#define NAME_OP         0x08
#define BYTE_PREFIX     0x0a
#define WORD_PREFIX     0x0b
#define DWORD_PREFIX    0x0c
#define STRING_PREFIX   0x0d
#define ZERO_OP         0x00
#define ONE_OP          0x01
#define ONES_OP         0xff
#define BUFFER_OP       0x11
#define PACKAGE_OP      0x12
#define EXT_OP_PREFIX   0x5b
#define DEVICE_OP       0x82    /* after EXT_OP_PREFIX */
#define ROOT_CHAR       '\\'
#define PARENT_CHAR     '^'
#define DUAL_NAME       0x2e
#define MULTI_NAME      0x2f

#define HID_MAX         ACPI_HID_MAX

/* The bytes being scanned: [0, end) of one table, reads checked against end. */
struct aml {
	const uint8_t *p;
	uint32_t end;
};

/*
 * PkgLength at pos: sets *len (counted from pos) and *hdr (bytes of the
 * encoding). Fails if the encoding or the object it describes leaves [0, end).
 */
static bool pkg_length(const struct aml *a, uint32_t pos, uint32_t *len, uint32_t *hdr)
{
	if (pos >= a->end)
		return false;
	uint8_t lead = a->p[pos];
	uint32_t extra = lead >> 6;
	if (extra > a->end - pos - 1)
		return false;
	uint32_t v;
	if (extra == 0) {
		v = lead & 0x3f;
	} else {
		if (lead & 0x30)
			return false;   /* bits 5:4 must be zero in the multi-byte form */
		v = lead & 0x0f;
		for (uint32_t i = 0; i < extra; i++)
			v |= (uint32_t)a->p[pos + 1 + i] << (4 + 8 * i);
	}
	if (v < extra + 1 || v > a->end - pos)
		return false;
	*len = v;
	*hdr = extra + 1;
	return true;
}

static bool lead_name_char(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || c == '_';
}

static bool name_seg_ok(const struct aml *a, uint32_t pos)
{
	if (pos > a->end || a->end - pos < 4 || !lead_name_char(a->p[pos]))
		return false;
	for (int i = 1; i < 4; i++) {
		uint8_t c = a->p[pos + i];
		if (!lead_name_char(c) && !(c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

/* NameString at pos: returns its length in bytes, 0 if it is not a valid name. */
static uint32_t name_string(const struct aml *a, uint32_t pos)
{
	uint32_t i = pos;
	if (i < a->end && a->p[i] == ROOT_CHAR) {
		i++;
	} else {
		while (i < a->end && a->p[i] == PARENT_CHAR && i - pos < 16)
			i++;
	}
	if (i >= a->end)
		return 0;
	uint32_t segs;
	if (a->p[i] == 0x00)
		return i + 1 - pos;     /* NullName */
	if (a->p[i] == DUAL_NAME) {
		segs = 2;
		i++;
	} else if (a->p[i] == MULTI_NAME) {
		if (i + 1 >= a->end || a->p[i + 1] == 0)
			return 0;
		segs = a->p[i + 1];
		i += 2;
	} else {
		segs = 1;
	}
	for (uint32_t s = 0; s < segs; s++, i += 4) {
		if (!name_seg_ok(a, i))
			return 0;
	}
	return i - pos;
}

/*
 * Device op at pos (0x5b 0x82 PkgLength NameString TermList): sets the body
 * start and the end of the device. False if the bytes are not a plausible device.
 */
static bool device_at(const struct aml *a, uint32_t pos, uint32_t *body, uint32_t *end)
{
	if (pos + 2 > a->end || a->p[pos] != EXT_OP_PREFIX || a->p[pos + 1] != DEVICE_OP)
		return false;
	uint32_t len, hdr;
	if (!pkg_length(a, pos + 2, &len, &hdr))
		return false;
	uint32_t dev_end = pos + 2 + len;
	struct aml inner = { a->p, dev_end };
	uint32_t name_len = name_string(&inner, pos + 2 + hdr);
	if (name_len == 0)
		return false;
	*body = pos + 2 + hdr + name_len;
	*end = dev_end;
	return true;
}

/* "NameOp XXXX" at pos with the given 4-character name? */
static bool name_op_is(const struct aml *a, uint32_t pos, const char *name)
{
	return pos + 5 <= a->end && a->p[pos] == NAME_OP && memcmp(a->p + pos + 1, name, 4) == 0;
}

/* An EISA id is three 5-bit letters and four hex digits, stored big-endian. */
static void eisa_id_decode(uint32_t le, char out[8])
{
	const char *hex = "0123456789ABCDEF";
	uint32_t v = ((le & 0xff) << 24) | ((le & 0xff00) << 8) | ((le >> 8) & 0xff00) | (le >> 24);
	out[0] = (char)('@' + ((v >> 26) & 0x1f));
	out[1] = (char)('@' + ((v >> 21) & 0x1f));
	out[2] = (char)('@' + ((v >> 16) & 0x1f));
	out[3] = hex[(v >> 12) & 0xf];
	out[4] = hex[(v >> 8) & 0xf];
	out[5] = hex[(v >> 4) & 0xf];
	out[6] = hex[v & 0xf];
	out[7] = '\0';
}

/* _HID data object at pos: a string or an EISA id dword. Returns bytes consumed, 0 if neither. */
static uint32_t parse_hid(const struct aml *a, uint32_t pos, char hid[HID_MAX])
{
	if (pos >= a->end)
		return 0;
	if (a->p[pos] == STRING_PREFIX) {
		uint32_t n = 0;
		for (;; n++) {
			if (pos + 1 + n >= a->end || n >= HID_MAX - 1)
				return 0;
			uint8_t c = a->p[pos + 1 + n];
			if (c == 0)
				break;
			if (c < 0x21 || c > 0x7e)
				return 0;
			hid[n] = (char)c;
		}
		if (n == 0)
			return 0;
		hid[n] = '\0';
		return n + 2;
	}
	if (a->p[pos] == DWORD_PREFIX && a->end - pos >= 5) {
		eisa_id_decode(get_le32(a->p + pos + 1), hid);
		return 5;
	}
	return 0;
}

struct resources {
	bool have_mem, have_io, have_irq;
	uint32_t mem_base, mem_size;
	uint32_t io_base;
	uint32_t irq;
};

/* Small and large resource descriptors (ACPI 6.x section 6.4); the first of each kind wins. */
static void decode_resources(const uint8_t *d, uint32_t len, struct resources *r)
{
	uint32_t i = 0;
	while (i < len) {
		uint8_t tag = d[i];
		if (tag & 0x80) {
			if (len - i < 3)
				return;
			uint32_t rlen = get_le16(d + i + 1);
			const uint8_t *b = d + i + 3;
			if (rlen > len - i - 3)
				return;
			if (tag == 0x86 && rlen >= 9 && !r->have_mem) {         /* Memory32Fixed */
				r->have_mem = true;
				r->mem_base = get_le32(b + 1);
				r->mem_size = get_le32(b + 5);
			} else if (tag == 0x85 && rlen >= 17 && !r->have_mem) { /* Memory32 */
				r->have_mem = true;
				r->mem_base = get_le32(b + 1);
				r->mem_size = get_le32(b + 13);
			} else if (tag == 0x89 && rlen >= 6 && b[1] >= 1 && !r->have_irq) { /* Extended Interrupt */
				r->have_irq = true;
				r->irq = get_le32(b + 2);
			}
			i += 3 + rlen;
		} else {
			uint8_t type = (tag >> 3) & 0x0f;
			uint32_t slen = tag & 0x07;
			const uint8_t *b = d + i + 1;
			if (slen > len - i - 1)
				return;
			if (type == 0x0f)
				return;                                         /* End Tag */
			if (type == 0x04 && slen >= 2 && !r->have_irq) {        /* IRQ: lowest bit of the mask */
				uint16_t mask = get_le16(b);
				for (uint32_t bit = 0; bit < 16; bit++) {
					if (mask & (1u << bit)) {
						r->have_irq = true;
						r->irq = bit;
						break;
					}
				}
			} else if (type == 0x08 && slen >= 7 && !r->have_io) {  /* IO: minimum base */
				r->have_io = true;
				r->io_base = get_le16(b + 1);
			} else if (type == 0x09 && slen >= 3 && !r->have_io) {  /* Fixed IO */
				r->have_io = true;
				r->io_base = get_le16(b) & 0x3ff;
			}
			i += 1 + slen;
		}
	}
}

/*
 * Buffer object at pos (BufferOp PkgLength BufferSize ByteList): decode its
 * bytes as resources. Returns the end of the buffer object, 0 if malformed.
 */
static uint32_t parse_crs_buffer(const struct aml *a, uint32_t pos, struct resources *r)
{
	if (pos >= a->end || a->p[pos] != BUFFER_OP)
		return 0;
	uint32_t len, hdr;
	if (!pkg_length(a, pos + 1, &len, &hdr))
		return 0;
	uint32_t buf_end = pos + 1 + len;
	uint32_t i = pos + 1 + hdr;
	uint32_t size;
	if (i >= buf_end)
		return 0;
	switch (a->p[i]) {
	case BYTE_PREFIX:
		if (buf_end - i < 2)
			return 0;
		size = a->p[i + 1];
		i += 2;
		break;
	case WORD_PREFIX:
		if (buf_end - i < 3)
			return 0;
		size = get_le16(a->p + i + 1);
		i += 3;
		break;
	case DWORD_PREFIX:
		if (buf_end - i < 5)
			return 0;
		size = get_le32(a->p + i + 1);
		i += 5;
		break;
	case ZERO_OP:
		size = 0;
		i += 1;
		break;
	case ONE_OP:
		size = 1;
		i += 1;
		break;
	default:
		return 0;
	}
	if (size > buf_end - i)
		size = buf_end - i;     /* the initializer is what is really there */
	decode_resources(a->p + i, size, r);
	return buf_end;
}

/*
 * Scan one device's own objects (skipping nested devices); if it has both
 * _HID and _CRS, print it and record it in acpi->devices.
 */
static void scan_device(const struct aml *table, uint32_t body, uint32_t end, struct acpi_info *acpi)
{
	struct aml a = { table->p, end };
	char hid[HID_MAX];
	bool have_hid = false, have_crs = false;
	struct resources r = { 0 };

	uint32_t i = body;
	while (i < end) {
		uint32_t nested_body, nested_end;
		if (device_at(&a, i, &nested_body, &nested_end)) {
			i = nested_end;         /* a child device's _HID is not ours */
			continue;
		}
		if (!have_hid && name_op_is(&a, i, "_HID")) {
			uint32_t n = parse_hid(&a, i + 5, hid);
			if (n) {
				have_hid = true;
				i += 5 + n;
				continue;
			}
		}
		if (!have_crs && name_op_is(&a, i, "_CRS")) {
			uint32_t next = parse_crs_buffer(&a, i + 5, &r);
			if (next) {
				have_crs = true;
				i = next;       /* resource bytes are not AML */
				continue;
			}
		}
		i++;
	}
	if (!have_hid || !have_crs)
		return;
	kprintf("acpi: device %s", hid);
	if (r.have_mem)
		kprintf(" mmio=0x%x size=0x%x", r.mem_base, r.mem_size);
	if (r.have_io)
		kprintf(" io=0x%x", r.io_base);
	if (r.have_irq)
		kprintf(" irq=%u", r.irq);
	kprintf("\n");

	if (acpi->device_count >= MAX_ACPI_DEVICES)
		return;
	struct acpi_device *d = &acpi->devices[acpi->device_count++];
	memcpy(d->hid, hid, sizeof(d->hid));
	d->have_mem = r.have_mem;
	d->have_io = r.have_io;
	d->have_irq = r.have_irq;
	d->mem_base = r.mem_base;
	d->mem_size = r.mem_size;
	d->io_base = r.io_base;
	d->irq = r.irq;
}

void aml_scan_devices(const uint8_t *table, uint32_t len, struct acpi_info *acpi)
{
	struct aml a = { table, len };
	for (uint32_t i = AML_HDR_LEN; i + 2 <= len; i++) {
		uint32_t body, end;
		/* Nested devices are found again by this outer loop, each reported once. */
		if (device_at(&a, i, &body, &end))
			scan_device(&a, body, end, acpi);
	}
}

bool aml_find_s5(const uint8_t *table, uint32_t len, uint8_t *slp_typa)
{
	struct aml a = { table, len };
	for (uint32_t i = AML_HDR_LEN + 1; i + 4 <= len; i++) {
		if (memcmp(table + i, "_S5_", 4) != 0)
			continue;
		bool named = table[i - 1] == NAME_OP ||
			     (table[i - 1] == ROOT_CHAR && i >= AML_HDR_LEN + 2 && table[i - 2] == NAME_OP);
		uint32_t pkg = i + 4;
		if (!named || pkg >= len || table[pkg] != PACKAGE_OP)
			continue;
		uint32_t plen, hdr;
		if (!pkg_length(&a, pkg + 1, &plen, &hdr))
			continue;
		uint32_t pkg_end = pkg + 1 + plen;
		uint32_t e = pkg + 1 + hdr + 1;         /* skip NumElements */
		if (e >= pkg_end)
			continue;
		switch (table[e]) {
		case BYTE_PREFIX:
			if (e + 1 >= pkg_end)
				continue;
			*slp_typa = table[e + 1] & 0x7;
			return true;
		case ZERO_OP:
			*slp_typa = 0;
			return true;
		case ONE_OP:
			*slp_typa = 1;
			return true;
		default:
			continue;
		}
	}
	return false;
}
