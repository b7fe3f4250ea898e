/// Every fixed guest-physical address, port and interrupt line Ebb uses, in one place.
///
/// ```
/// 0x0000_0500  GDT (shared by the PVH and 64-bit entries)
/// 0x0000_6000  PVH hvm_start_info, module list, memory map
/// 0x0000_7000  boot_params (the Linux "zero page")
/// 0x0000_8ff0  boot stack top (the guest replaces it at once)
/// 0x0000_9000  PML4, PDPT, 4 page directories: identity map of the first 4 GiB (64-bit entry)
/// 0x0002_0000  kernel command line (one page)
/// 0x000a_0000  legacy VGA/BIOS hole, reserved
/// 0x000e_0000  ACPI tables, RSDP first (where a BIOS-area scan looks too), 64 KiB at most
/// 0x000f_0000  MP table (floating pointer first, where Linux's scan of the BIOS area starts)
/// 0x000f_fff0  reset vector: real-mode code that asks for a reset (ResetVector)
/// 0x0010_0000  kernel (bzImage protected-mode part; ELF kernels at their own p_paddr) and RAM
/// 0xc000_0000  32-bit MMIO hole: virtio-mmio windows, IOAPIC, local APIC, KVM's TSS
/// 0x1_0000_0000  RAM above 4 GiB for guests larger than 3 GiB
/// ```
public enum Layout {
    public static let gdtAddress: UInt64 = 0x500
    public static let pvhStartInfoAddress: UInt64 = 0x6000
    public static let pvhStartInfoLimitBytes: UInt64 = 0x1000
    public static let bootParamsAddress: UInt64 = 0x7000
    public static let bootStackTop: UInt64 = 0x8ff0
    public static let pml4Address: UInt64 = 0x9000
    public static let pdptAddress: UInt64 = 0xa000
    /// Four page directories of 2 MiB pages, one per GiB.
    public static let pageDirectoryAddress: UInt64 = 0xb000
    public static let identityMappedGiB: UInt64 = 4
    public static let commandLineAddress: UInt64 = 0x20000
    public static let commandLineLimitBytes = 4096

    /// RAM below the legacy hole: 640 KiB.
    public static let lowRAMEnd: UInt64 = 0xa_0000
    public static let acpiTablesAddress: UInt64 = 0xe_0000
    public static let acpiTablesLimitBytes: UInt64 = 0x1_0000
    public static let mpTableAddress: UInt64 = 0xf_0000
    /// The start of "high" memory, where kernels load.
    public static let highMemoryStart: UInt64 = 0x10_0000
    public static let bzImageLoadAddress: UInt64 = 0x10_0000

    public static let mmioHoleStart: UInt64 = 0xc000_0000
    public static let ramAbove4GiBStart: UInt64 = 0x1_0000_0000
    public static let virtioMMIOBase: UInt64 = 0xd000_0000
    public static let virtioMMIOStride: UInt64 = 0x1000
    public static let ioAPICAddress: UInt64 = 0xfec0_0000
    public static let localAPICAddress: UInt64 = 0xfee0_0000
    /// KVM's three-page real-mode TSS and its identity-map page, just below the BIOS ROM area.
    public static let kvmTSSAddress: UInt64 = 0xfffb_d000
    public static let kvmIdentityMapAddress: UInt64 = 0xfffb_c000

    public static let serialPort: UInt16 = 0x3f8
    public static let serialIRQ: UInt32 = 4
    public static let i8042Port: UInt16 = 0x60
    /// The i8042's keyboard interrupt, ISA IRQ 1 as on every PC.
    public static let keyboardIRQ: UInt32 = 1
    /// FADT sleep control (0x600), sleep status (0x601) and reset (0x602) registers.
    public static let acpiPowerPort: UInt16 = 0x600
    /// virtio-mmio devices take GSIs from here up (5 and up are free ISA lines on the IOAPIC).
    public static let firstDeviceIRQ: UInt32 = 5
    public static let ioAPICPins: UInt32 = 24

    public static let minimumMemoryBytes: UInt64 = 16 << 20
}
