import GuestMemory
import LinuxBoot

/// How `memoryBytes` of guest RAM is placed around the 32-bit MMIO hole, and the memory map the
/// guest is told about.
public struct GuestRAMLayout: Sendable, Equatable {
    public let memoryBytes: UInt64

    public init(memoryBytes: UInt64) { self.memoryBytes = memoryBytes }

    /// RAM from 0 up to the hole, and the rest from 4 GiB up.
    public var regions: [GuestRange] {
        let below = min(memoryBytes, Layout.mmioHoleStart)
        // Neither range can pass 2^64 for any size Machine accepts (at most the host's RAM).
        var ranges = [GuestRange(start: GuestAddress(0), length: below)]
        if memoryBytes > below {
            ranges.append(GuestRange(start: GuestAddress(Layout.ramAbove4GiBStart), length: memoryBytes - below))
        }
        return ranges.compactMap { $0 }
    }

    /// The end of RAM below the hole: kernels, the initrd and boot data all live under it.
    public var lowRAMTop: UInt64 { min(memoryBytes, Layout.mmioHoleStart) }

    /// The e820 / PVH memory map: conventional memory, the legacy hole with the ACPI tables
    /// (reserved, so the guest never reuses it), then RAM from 1 MiB.
    public var memoryMap: [MemoryMapEntry] {
        var map = [
            MemoryMapEntry(address: 0, sizeBytes: Layout.lowRAMEnd, kind: .ram),
            MemoryMapEntry(address: Layout.acpiTablesAddress, sizeBytes: Layout.highMemoryStart - Layout.acpiTablesAddress, kind: .reserved),
            MemoryMapEntry(address: Layout.highMemoryStart, sizeBytes: lowRAMTop - Layout.highMemoryStart, kind: .ram),
        ]
        if memoryBytes > lowRAMTop {
            map.append(MemoryMapEntry(address: Layout.ramAbove4GiBStart, sizeBytes: memoryBytes - lowRAMTop, kind: .ram))
        }
        return map
    }
}
