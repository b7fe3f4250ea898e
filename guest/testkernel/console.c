/*
 * kprintf: a small printf onto the serial port. One call is printed under a
 * spinlock so that lines from several CPUs never interleave. Newlines are
 * sent as a bare '\n' (the VMM's tests match whole lines).
 * Supported: %d %i %u %x %X %p %s %c %%, flags '-' '0', a width, a precision
 * for %s (also '*'), length modifiers l, ll, z.
 */
#include "kernel.h"
#include "io.h"

static volatile uint32_t console_lock;
static volatile bool panic_mode;

static void lock(void)
{
	/* In panic mode the lock may be held by the CPU that faulted: give up waiting. */
	for (uint32_t spins = 0; __atomic_exchange_n(&console_lock, 1, __ATOMIC_ACQUIRE); spins++) {
		if (panic_mode && spins > 100000)
			return;
		cpu_relax();
	}
}

static void unlock(void)
{
	__atomic_store_n(&console_lock, 0, __ATOMIC_RELEASE);
}

void console_panic_mode(void)
{
	panic_mode = true;
}

static void put_padding(int n, char c)
{
	while (n-- > 0)
		serial_putc(c);
}

static void put_string(const char *s, int width, int prec, bool left)
{
	if (!s)
		s = "(null)";
	int len = 0;
	while (s[len] && (prec < 0 || len < prec))
		len++;
	if (!left)
		put_padding(width - len, ' ');
	for (int i = 0; i < len; i++)
		serial_putc(s[i]);
	if (left)
		put_padding(width - len, ' ');
}

static void put_number(uint64_t v, unsigned base, bool upper, bool negative,
		       int width, bool zero_pad, bool left)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char buf[24];
	int n = 0;
	do {
		buf[n++] = digits[v % base];
		v /= base;
	} while (v);
	int len = n + (negative ? 1 : 0);
	if (!left && !zero_pad)
		put_padding(width - len, ' ');
	if (negative)
		serial_putc('-');
	if (!left && zero_pad)
		put_padding(width - len, '0');
	while (n)
		serial_putc(buf[--n]);
	if (left)
		put_padding(width - len, ' ');
}

static void vformat(const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			serial_putc(*fmt);
			continue;
		}
		fmt++;
		bool left = false, zero_pad = false;
		for (;; fmt++) {
			if (*fmt == '-')
				left = true;
			else if (*fmt == '0')
				zero_pad = true;
			else
				break;
		}
		int width = 0;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		int prec = -1;
		if (*fmt == '.') {
			fmt++;
			prec = 0;
			if (*fmt == '*') {
				prec = va_arg(ap, int);
				fmt++;
			} else {
				while (*fmt >= '0' && *fmt <= '9')
					prec = prec * 10 + (*fmt++ - '0');
			}
		}
		int longs = 0;
		while (*fmt == 'l' || *fmt == 'z') {
			longs++;
			fmt++;
		}

		uint64_t u;
		switch (*fmt) {
		case 'd':
		case 'i': {
			int64_t s = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
			u = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
			put_number(u, 10, false, s < 0, width, zero_pad, left);
			break;
		}
		case 'u':
		case 'x':
		case 'X':
			u = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
			put_number(u, *fmt == 'u' ? 10 : 16, *fmt == 'X', false, width, zero_pad, left);
			break;
		case 'p':
			serial_putc('0');
			serial_putc('x');
			put_number((uintptr_t)va_arg(ap, void *), 16, false, false, width, zero_pad, left);
			break;
		case 's':
			put_string(va_arg(ap, const char *), width, prec, left);
			break;
		case 'c':
			serial_putc((char)va_arg(ap, int));
			break;
		case '%':
			serial_putc('%');
			break;
		case '\0':
			return;
		default:
			serial_putc('%');
			serial_putc(*fmt);
			break;
		}
	}
}

void vkprintf(const char *fmt, va_list ap)
{
	lock();
	vformat(fmt, ap);
	unlock();
}

void kprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vkprintf(fmt, ap);
	va_end(ap);
}
