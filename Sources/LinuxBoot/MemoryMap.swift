/// One entry of the physical memory map handed to the guest: the e820 table of boot_params and
/// the PVH memmap use the same types and the same meaning.
public struct MemoryMapEntry: Equatable, Sendable {
    public enum Kind: UInt32, Sendable {
        /// E820_TYPE_RAM
        case ram = 1
        /// E820_TYPE_RESERVED
        case reserved = 2
        /// E820_TYPE_ACPI: ACPI tables, reclaimable once parsed.
        case acpi = 3
    }

    public let address: UInt64
    public let sizeBytes: UInt64
    public let kind: Kind

    public init(address: UInt64, sizeBytes: UInt64, kind: Kind) {
        self.address = address
        self.sizeBytes = sizeBytes
        self.kind = kind
    }
}
