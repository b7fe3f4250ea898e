/*
 * Fixed addresses, sizes and selectors of the test kernel, in one place.
 * Included from C and from assembly, so only #defines live here.
 */
#ifndef EBB_LAYOUT_H
#define EBB_LAYOUT_H

/* Physical (= virtual: everything runs identity mapped) load address. */
#define KERNEL_LOAD_ADDR        0x100000

/* Offset of the Linux 64-bit boot protocol entry inside the image. */
#define LINUX_ENTRY64_OFFSET    0x200

/*
 * GDT layout. The order of the user entries follows what SYSCALL/SYSRET
 * need (STAR[63:48] = USER_CODE32; SYSRET then takes SS = +8, CS64 = +16).
 * USER_DATA and USER_CODE64 are filled (ring 3 is entered with iretq, never
 * with sysret: syscall does not work on kvm_pvm), USER_CODE32 stays null,
 * and usermode.c writes the TSS descriptor before loading it.
 */
#define SEL_NULL                0x00
#define SEL_KERNEL_CODE64       0x08
#define SEL_KERNEL_DATA         0x10
#define SEL_USER_CODE32         0x18    /* reserved, null */
#define SEL_USER_DATA           0x20    /* DPL3 data */
#define SEL_USER_CODE64         0x28    /* DPL3 64-bit code */
#define SEL_KERNEL_CODE32       0x30    /* only used while entering long mode */
#define SEL_TSS                 0x38    /* 16-byte TSS descriptor (BSP), set by usermode.c */
#define GDT_ENTRIES             9       /* 8-byte slots: 0x00 .. 0x40 */

/* Exception vectors the IDT covers (no external interrupts are used). */
#define IDT_VECTORS             32

/* Stacks. The AP stacks are indexed by the order in which APs arrive. */
#define BOOT_STACK_SIZE         16384
#define AP_STACK_SIZE           4096
#define MAX_CPUS                64

/* Where the AP real-mode trampoline is copied (SIPI vector = page >> 12). */
#define AP_TRAMPOLINE_PREFERRED 0x8000

/* Boot path, passed from the entry code to kmain() in %edi. */
#define BOOT_PVH                1
#define BOOT_LINUX32            2
#define BOOT_LINUX64            3

/* Control register / MSR bits used while entering long mode. */
#define CR0_PE                  0x00000001
#define CR0_PG                  0x80000000
#define CR4_PAE                 0x00000020
#define MSR_EFER                0xC0000080
#define EFER_LME                0x00000100

#endif
