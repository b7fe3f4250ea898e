/// `struct hvm_start_info` (xen/include/public/arch-x86/hvm/start_info.h, version 1) with its module
/// list and memory map, laid out contiguously for the PVH entry point.
public struct StartInfo {
    public static let magic: UInt32 = 0x336e_c578
    static let headerBytes = 56
    static let moduleBytes = 32
    static let memoryMapEntryBytes = 24

    public var commandLineAddress: UInt64 = 0
    public var rsdpAddress: UInt64 = 0
    public var initrd: (address: UInt64, sizeBytes: UInt64)?
    public var memoryMap: [MemoryMapEntry] = []

    public init() {}

    public var encodedSizeBytes: Int {
        Self.headerBytes + (initrd == nil ? 0 : Self.moduleBytes) + memoryMap.count * Self.memoryMapEntryBytes
    }

    /// The bytes to place at `address`; the module list and memory map follow the header.
    public func encoded(at address: UInt64) -> [UInt8] {
        var out = ByteWriter(size: encodedSizeBytes)
        let moduleListOffset = Self.headerBytes
        let memoryMapOffset = moduleListOffset + (initrd == nil ? 0 : Self.moduleBytes)
        out.put(Self.magic, at: 0)
        out.put(UInt32(1), at: 4) // version 1: has the memory map fields
        out.put(UInt32(0), at: 8) // flags
        out.put(UInt32(initrd == nil ? 0 : 1), at: 12)
        out.put(initrd == nil ? UInt64(0) : address + UInt64(moduleListOffset), at: 16)
        out.put(commandLineAddress, at: 24)
        out.put(rsdpAddress, at: 32)
        out.put(address + UInt64(memoryMapOffset), at: 40)
        out.put(UInt32(memoryMap.count), at: 48)
        if let initrd {
            out.put(initrd.address, at: moduleListOffset)
            out.put(initrd.sizeBytes, at: moduleListOffset + 8)
        }
        for (index, entry) in memoryMap.enumerated() {
            let offset = memoryMapOffset + index * Self.memoryMapEntryBytes
            out.put(entry.address, at: offset)
            out.put(entry.sizeBytes, at: offset + 8)
            out.put(entry.kind.rawValue, at: offset + 16)
        }
        return out.bytes
    }
}
