import ByteOrder

/// The "zero page" (`struct boot_params`) for the Linux 64-bit boot protocol.
public struct BootParams {
    /// Offsets inside `struct boot_params` (arch/x86/include/uapi/asm/bootparam.h).
    enum Offset {
        static let acpiRSDPAddress = 0x070
        static let extRamdiskImage = 0x0c0
        static let extRamdiskSize = 0x0c4
        static let extCmdLinePtr = 0x0c8
        static let e820Entries = 0x1e8
        static let setupHeader = 0x1f1
        static let e820Table = 0x2d0
    }

    public static let sizeBytes = 4096
    /// E820_MAX_ENTRIES_ZEROPAGE
    public static let maxMemoryMapEntries = 128
    static let e820EntryBytes = 20
    /// type_of_loader 0xff: "undefined" boot loader, as other VMMs report.
    static let undefinedLoader: UInt8 = 0xff

    public var header: SetupHeader
    public var commandLineAddress: UInt32 = 0
    /// code32_start: where the loader put the protected-mode kernel.
    public var kernelAddress: UInt32 = 0x10_0000
    public var initrd: (address: UInt64, sizeBytes: UInt64)?
    public var rsdpAddress: UInt64 = 0
    public var memoryMap: [MemoryMapEntry] = []

    public init(header: SetupHeader) { self.header = header }

    /// The 4096 bytes to place in guest memory; throws if the memory map has too many entries.
    public func encoded() throws -> [UInt8] {
        guard memoryMap.count <= Self.maxMemoryMapEntries else {
            throw BootImageError.doesNotFit("a memory map of \(memoryMap.count) entries")
        }
        var page = ByteWriter(size: Self.sizeBytes)
        page.put(header.rawHeader, at: Offset.setupHeader)
        page.put(Self.undefinedLoader, at: SetupHeader.Offset.typeOfLoader)
        page.put(commandLineAddress, at: SetupHeader.Offset.cmdLinePtr)
        page.put(kernelAddress, at: SetupHeader.Offset.code32Start)
        if let initrd {
            page.put(UInt32(truncatingIfNeeded: initrd.address), at: SetupHeader.Offset.ramdiskImage)
            page.put(UInt32(truncatingIfNeeded: initrd.sizeBytes), at: SetupHeader.Offset.ramdiskSize)
            page.put(UInt32(truncatingIfNeeded: initrd.address >> 32), at: Offset.extRamdiskImage)
            page.put(UInt32(truncatingIfNeeded: initrd.sizeBytes >> 32), at: Offset.extRamdiskSize)
        }
        page.put(rsdpAddress, at: Offset.acpiRSDPAddress)
        page.put(UInt8(memoryMap.count), at: Offset.e820Entries)
        for (index, entry) in memoryMap.enumerated() {
            let offset = Offset.e820Table + index * Self.e820EntryBytes
            page.put(entry.address, at: offset)
            page.put(entry.sizeBytes, at: offset + 8)
            page.put(entry.kind.rawValue, at: offset + 16)
        }
        return page.bytes
    }
}
