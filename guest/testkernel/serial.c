/*
 * The 8250/16550 UART at I/O port 0x3f8 (COM1), polled, no interrupts.
 */
#include "kernel.h"
#include "io.h"

#define COM1            0x3f8
#define UART_RBR        0       /* receive buffer (read, DLAB=0) */
#define UART_THR        0       /* transmit holding (write, DLAB=0) */
#define UART_DLL        0       /* divisor latch low (DLAB=1) */
#define UART_IER        1       /* interrupt enable (DLAB=0) */
#define UART_DLM        1       /* divisor latch high (DLAB=1) */
#define UART_FCR        2
#define UART_LCR        3
#define UART_MCR        4
#define UART_LSR        5

#define LCR_8N1         0x03
#define LCR_DLAB        0x80
#define MCR_DTR_RTS     0x03    /* OUT2 stays off: no IRQ line either */
#define LSR_DATA_READY  0x01
#define LSR_THR_EMPTY   0x20

/* Bounded so that a UART whose LSR never says "empty" cannot hang us. */
#define TX_POLL_LIMIT   100000

void serial_init(void)
{
	outb(COM1 + UART_IER, 0x00);
	outb(COM1 + UART_LCR, LCR_DLAB);
	outb(COM1 + UART_DLL, 0x01);            /* 115200 baud */
	outb(COM1 + UART_DLM, 0x00);
	outb(COM1 + UART_LCR, LCR_8N1);
	outb(COM1 + UART_FCR, 0x07);            /* FIFO on, both cleared */
	outb(COM1 + UART_MCR, MCR_DTR_RTS);
}

void serial_putc(char c)
{
	for (int i = 0; i < TX_POLL_LIMIT; i++) {
		if (inb(COM1 + UART_LSR) & LSR_THR_EMPTY)
			break;
		cpu_relax();
	}
	outb(COM1 + UART_THR, (uint8_t)c);
}

bool serial_poll_byte(uint8_t *out)
{
	uint8_t lsr = inb(COM1 + UART_LSR);
	/* An absent UART reads 0xff: do not take that for "data ready". */
	if (lsr == 0xff || !(lsr & LSR_DATA_READY))
		return false;
	*out = inb(COM1 + UART_RBR);
	return true;
}
