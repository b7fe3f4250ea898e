/*
 * kmain: the boot CPU's C entry, from either boot path, in long mode on our
 * own GDT, stack and page tables. Reads the boot data, describes the machine
 * (memory, ACPI, CPUs), runs one scenario and powers off.
 */
#include "kernel.h"

static struct boot_info boot_info;
static struct acpi_info acpi_info;

void kmain(int path, uint64_t info_paddr)
{
	serial_init();
	cpu_init_bsp();
	/* Copy the loader's data first: the AP trampoline may reuse that memory. */
	bootinfo_collect(path, info_paddr, &boot_info);
	bootinfo_print(&boot_info);
	acpi_init(&boot_info, &acpi_info);
	smp_start_aps(&boot_info, &acpi_info);

	struct kernel_state k = { &boot_info, &acpi_info };
	scenario_run(&k);
	power_off(&acpi_info);
}
