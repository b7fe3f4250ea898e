/*
 * Leaving the machine: ACPI power-off the way Linux does it on a
 * hardware-reduced platform (FADT SLEEP_CONTROL_REG, \_S5_ SLP_TYPa), with
 * the legacy PM1a control block as the fallback, and the two resets.
 */
#include "kernel.h"
#include "io.h"

#define SLEEP_CTL_SLP_EN        0x20    /* bit 5 of SLEEP_CONTROL_REG */
#define SLEEP_CTL_TYP_SHIFT     2       /* SLP_TYPx in bits 4:2 */
#define SLEEP_STS_WAK_STS       0x80    /* write 1 to clear, as Linux does before sleeping */
#define PM1_CNT_SLP_EN          (1u << 13)
#define PM1_CNT_TYP_SHIFT       10
#define I8042_STATUS            0x64
#define I8042_COMMAND           0x64
#define I8042_INPUT_FULL        0x02
#define I8042_PULSE_RESET       0xfe

/* Write a 1-, 2- or 4-byte value to a Generic Address Structure register. */
bool gas_write(const struct gas *g, uint64_t value, unsigned bytes)
{
	if (g->address == 0)
		return false;
	if (g->space == GAS_SYSTEM_IO) {
		if (g->address > 0xffff)
			return false;
		uint16_t port = (uint16_t)g->address;
		if (bytes == 1)
			outb(port, (uint8_t)value);
		else if (bytes == 2)
			outw(port, (uint16_t)value);
		else
			outl(port, (uint32_t)value);
		return true;
	}
	if (g->space == GAS_SYSTEM_MEMORY) {
		if (g->address > 0x100000000ull - 4)
			return false;   /* outside the identity map */
		if (bytes == 1)
			mmio_write8(g->address, (uint8_t)value);
		else if (bytes == 2)
			mmio_write16(g->address, (uint16_t)value);
		else
			mmio_write32(g->address, (uint32_t)value);
		return true;
	}
	return false;
}

void power_off(const struct acpi_info *acpi)
{
	kprintf("poweroff: acpi\n");
	if (!acpi->have_s5) {
		kprintf("poweroff: no \\_S5_ package in the DSDT\n");
	} else if (acpi->sleep_control.address) {
		uint8_t typ = acpi->slp_typa & 0x7;
		if (acpi->sleep_status.address)
			gas_write(&acpi->sleep_status, SLEEP_STS_WAK_STS, 1);
		if (!gas_write(&acpi->sleep_control, (uint64_t)(typ << SLEEP_CTL_TYP_SHIFT) | SLEEP_CTL_SLP_EN, 1))
			kprintf("poweroff: sleep control register in address space %u not supported\n",
				acpi->sleep_control.space);
	} else if (acpi->pm1a_cnt && acpi->pm1a_cnt <= 0xffff) {
		outw((uint16_t)acpi->pm1a_cnt, (uint16_t)(((acpi->slp_typa & 0x7u) << PM1_CNT_TYP_SHIFT) | PM1_CNT_SLP_EN));
	} else {
		kprintf("poweroff: FADT has neither SLEEP_CONTROL_REG nor PM1a_CNT_BLK\n");
	}
	tsc_delay(TSC_SETTLE);
	kprintf("poweroff: failed\n");
	halt_forever();
}

void reset_i8042(void)
{
	/* Wait (bounded) for the controller's input buffer, as a real one needs. */
	for (int i = 0; i < 1000 && (inb(I8042_STATUS) & I8042_INPUT_FULL); i++)
		cpu_relax();
	outb(I8042_COMMAND, I8042_PULSE_RESET);
	tsc_delay(TSC_SETTLE);
	kprintf("reset: failed\n");
	halt_forever();
}

void reset_acpi(const struct acpi_info *acpi)
{
	if (acpi->reset_reg.address == 0)
		kprintf("reset: FADT has no RESET_REG\n");
	else if (!gas_write(&acpi->reset_reg, acpi->reset_value, 1))
		kprintf("reset: RESET_REG in address space %u not supported\n", acpi->reset_reg.space);
	tsc_delay(TSC_SETTLE);
	kprintf("reset: failed\n");
	halt_forever();
}
