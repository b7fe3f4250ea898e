import ByteOrder

/// Resource descriptors for a `_CRS` buffer (ACPI 6.5, 6.4).
public enum ResourceDescriptor: Sendable, Equatable {
    /// 16-bit decoded I/O ports (small item 0x47).
    case ioPorts(base: UInt16, count: UInt8)
    /// An ISA IRQ without flags (small item 0x22): edge, active high.
    case isaIRQ(UInt8)
    /// A fixed 32-bit memory range (large item 0x86).
    case memory32Fixed(base: UInt32, sizeBytes: UInt32, writable: Bool)
    /// One extended interrupt (large item 0x89), consumer, exclusive.
    case interrupt(UInt32, edgeTriggered: Bool, activeLow: Bool)

    var encoded: [UInt8] {
        switch self {
        case let .ioPorts(base, count):
            let lo = UInt8(base & 0xff), hi = UInt8(base >> 8)
            return [0x47, 0x01, lo, hi, lo, hi, 0x01, count]
        case let .isaIRQ(irq):
            let mask = UInt16(1) << UInt16(irq & 15)
            return [0x22, UInt8(mask & 0xff), UInt8(mask >> 8)]
        case let .memory32Fixed(base, size, writable):
            return [0x86, 0x09, 0x00, writable ? 1 : 0] + littleEndianBytes(UInt64(base), count: 4)
                + littleEndianBytes(UInt64(size), count: 4)
        case let .interrupt(number, edge, activeLow):
            let flags: UInt8 = 0x01 | (edge ? 0x02 : 0) | (activeLow ? 0x04 : 0)
            return [0x89, 0x06, 0x00, flags, 0x01] + littleEndianBytes(UInt64(number), count: 4)
        }
    }

    /// A `ResourceTemplate()`: the descriptors and an end tag, as an AML buffer.
    public static func template(_ descriptors: [ResourceDescriptor]) -> AML {
        // End tag 0x79 with checksum 0: "treat as correct" (ACPI 6.4.2.9).
        .buffer(descriptors.flatMap(\.encoded) + [0x79, 0x00])
    }
}
