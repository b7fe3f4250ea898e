/// The parts of a bzImage's setup header (Documentation/arch/x86/boot.rst) that a 64-bit loader needs,
/// validated on parse.
public struct SetupHeader: Equatable, Sendable {
    /// Offsets of setup-header fields, as in the boot protocol document.
    enum Offset {
        static let setupSects = 0x1f1
        static let syssize = 0x1f4
        static let bootFlag = 0x1fe
        static let jump = 0x200
        static let header = 0x202
        static let version = 0x206
        static let typeOfLoader = 0x210
        static let loadflags = 0x211
        static let code32Start = 0x214
        static let ramdiskImage = 0x218
        static let ramdiskSize = 0x21c
        static let cmdLinePtr = 0x228
        static let initrdAddrMax = 0x22c
        static let kernelAlignment = 0x230
        static let relocatableKernel = 0x234
        static let xloadflags = 0x236
        static let cmdlineSize = 0x238
        static let prefAddress = 0x258
        static let initSize = 0x260
        /// The last field a 2.12 header always has (init_size, u32) ends here.
        static let minimumEnd = 0x264
    }

    static let bootFlagValue: UInt16 = 0xAA55
    static let headerMagic: UInt32 = 0x5372_6448 // "HdrS"
    static let minimumVersion: UInt16 = 0x020c
    /// XLF_KERNEL_64: the kernel has the 64-bit entry at load address + 0x200.
    static let xlfKernel64: UInt16 = 1 << 0
    /// LOADED_HIGH: the protected-mode kernel is loaded at 0x100000.
    static let loadedHigh: UInt8 = 1 << 0

    public let version: UInt16
    public let setupSectors: Int
    public let loadflags: UInt8
    public let xloadflags: UInt16
    public let initrdAddressMax: UInt32
    public let commandLineSizeMax: UInt32
    public let initSizeBytes: UInt32
    /// relocatable_kernel: the protected-mode kernel may be loaded at any `kernelAlignmentBytes`
    /// boundary, not only at 1 MiB.
    public let isRelocatable: Bool
    public let kernelAlignmentBytes: UInt32
    /// pref_address (protocol 2.10+): where a relocating loader should put the kernel; 16 MiB
    /// (LOAD_PHYSICAL_ADDR) for x86-64 defaults.
    public let preferredLoadAddress: UInt64
    /// The setup header bytes (0x1f1 up to the end the jump at 0x200 implies), copied into boot_params.
    public let rawHeader: [UInt8]
    /// Offset of the protected-mode kernel inside the file.
    public let kernelOffset: Int

    /// Parses and validates the header of a bzImage file.
    public init(image: [UInt8]) throws {
        let reader = ByteReader(image)
        guard image.count >= Offset.minimumEnd else {
            throw image.count > Offset.bootFlag + 1 && reader.u16(Offset.bootFlag) == Self.bootFlagValue
                ? BootImageError.truncated("the setup header ends at \(image.count) bytes")
                : BootImageError.unrecognized
        }
        guard reader.u16(Offset.bootFlag) == Self.bootFlagValue, reader.u32(Offset.header) == Self.headerMagic else {
            throw BootImageError.unrecognized
        }
        let version = reader.u16(Offset.version) ?? 0
        guard version >= Self.minimumVersion else { throw BootImageError.unsupportedProtocol(version: version) }
        let xloadflags = reader.u16(Offset.xloadflags) ?? 0
        guard xloadflags & Self.xlfKernel64 != 0 else { throw BootImageError.not64Bit }
        let loadflags = reader.u8(Offset.loadflags) ?? 0
        guard loadflags & Self.loadedHigh != 0 else { throw BootImageError.not64Bit }

        // setup_sects == 0 means 4, for very old images (boot.rst).
        let declared = Int(reader.u8(Offset.setupSects) ?? 0)
        let setupSectors = declared == 0 ? 4 : declared
        let kernelOffset = (setupSectors + 1) * 512
        // The header runs from 0x1f1 to 0x202 + the jump's 8-bit displacement.
        let headerEnd = max(Offset.minimumEnd, 0x202 + Int(reader.u8(Offset.jump + 1) ?? 0))
        guard headerEnd <= kernelOffset, let raw = reader.slice(Offset.setupSects, count: headerEnd - Offset.setupSects) else {
            throw BootImageError.truncated("the setup header claims \(headerEnd) bytes")
        }
        // The 64-bit entry is at +0x200 of the protected-mode kernel: it must be in the file.
        guard image.count > kernelOffset + 0x200 else {
            throw BootImageError.truncated("\(setupSectors) setup sectors, but only \(image.count) bytes in the file")
        }
        let syssize = UInt64(reader.u32(Offset.syssize) ?? 0) * 16
        guard syssize <= UInt64(image.count - kernelOffset) else {
            throw BootImageError.truncated("syssize says \(syssize) bytes of kernel, the file has \(image.count - kernelOffset)")
        }

        self.version = version
        self.setupSectors = setupSectors
        self.loadflags = loadflags
        self.xloadflags = xloadflags
        self.initrdAddressMax = reader.u32(Offset.initrdAddrMax) ?? 0
        self.commandLineSizeMax = reader.u32(Offset.cmdlineSize) ?? 255
        self.initSizeBytes = reader.u32(Offset.initSize) ?? 0
        self.isRelocatable = (reader.u8(Offset.relocatableKernel) ?? 0) != 0
        self.kernelAlignmentBytes = reader.u32(Offset.kernelAlignment) ?? 0
        self.preferredLoadAddress = reader.u64(Offset.prefAddress) ?? 0
        self.rawHeader = Array(raw)
        self.kernelOffset = kernelOffset
    }
}
