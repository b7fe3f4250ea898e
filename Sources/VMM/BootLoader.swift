import GuestMemory
import LinuxBoot

/// Where and how the boot vCPU starts.
public enum BootEntry: Sendable, Equatable {
    /// Linux 64-bit boot protocol: long mode, identity paging, RSI = boot_params.
    case longMode(entry: UInt64, bootParams: UInt64)
    /// PVH: 32-bit protected mode, paging off, EBX = hvm_start_info.
    case pvh(entry: UInt64, startInfo: UInt64)
}

/// Places a kernel, its command line, initrd and boot information in guest memory.
public struct BootLoader {
    let memory: GuestMemory
    let ramLayout: GuestRAMLayout

    public init(memory: GuestMemory, ramLayout: GuestRAMLayout) {
        self.memory = memory
        self.ramLayout = ramLayout
    }

    public func load(kernel: KernelImage, commandLine: String, initrd: [UInt8]?, rsdpAddress: UInt64) throws -> BootEntry {
        let commandLineBytes = Array(commandLine.utf8) + [0]
        switch kernel {
        case let .bzImage(header, image):
            let limit = min(Int(header.commandLineSizeMax), Layout.commandLineLimitBytes - 1)
            guard commandLineBytes.count - 1 <= limit else {
                throw BootImageError.commandLineTooLong(length: commandLineBytes.count - 1, limit: limit)
            }
            let (kernelAddress, kernelEnd) = try loadBzImage(header: header, image: image)
            try memory.write(commandLineBytes, at: GuestAddress(Layout.commandLineAddress))
            var params = BootParams(header: header)
            params.commandLineAddress = UInt32(Layout.commandLineAddress)
            params.kernelAddress = UInt32(kernelAddress)
            params.rsdpAddress = rsdpAddress
            params.memoryMap = ramLayout.memoryMap
            if let initrd {
                let limit = min(UInt64(header.initrdAddressMax) + 1, ramLayout.lowRAMTop)
                params.initrd = try placeInitrd(initrd, above: kernelEnd, below: limit)
            }
            try memory.write(try params.encoded(), at: GuestAddress(Layout.bootParamsAddress))
            try writeIdentityPageTables()
            return .longMode(entry: kernelAddress + 0x200, bootParams: Layout.bootParamsAddress)

        case let .pvh(elf, image):
            guard commandLineBytes.count <= Layout.commandLineLimitBytes else {
                throw BootImageError.commandLineTooLong(length: commandLineBytes.count - 1, limit: Layout.commandLineLimitBytes - 1)
            }
            let kernelEnd = try loadELF(elf, image: image)
            try memory.write(commandLineBytes, at: GuestAddress(Layout.commandLineAddress))
            var info = StartInfo()
            info.commandLineAddress = Layout.commandLineAddress
            info.rsdpAddress = rsdpAddress
            info.memoryMap = ramLayout.memoryMap
            if let initrd {
                info.initrd = try placeInitrd(initrd, above: kernelEnd, below: ramLayout.lowRAMTop)
            }
            guard info.encodedSizeBytes <= Layout.pvhStartInfoLimitBytes else {
                throw BootImageError.doesNotFit("the PVH start info")
            }
            try memory.write(info.encoded(at: Layout.pvhStartInfoAddress), at: GuestAddress(Layout.pvhStartInfoAddress))
            return .pvh(entry: UInt64(elf.pvhEntry), startInfo: Layout.pvhStartInfoAddress)
        }
    }

    /// Copies the protected-mode kernel to its load address; returns that address and the end of the
    /// memory the kernel may use from there (init_size).
    private func loadBzImage(header: SetupHeader, image: [UInt8]) throws -> (address: UInt64, end: UInt64) {
        let payload = image[header.kernelOffset...]
        let footprint = max(UInt64(payload.count), UInt64(header.initSizeBytes))
        let address = Self.loadAddress(of: header, footprintBytes: footprint, lowRAMTop: ramLayout.lowRAMTop)
        let end = address + footprint
        guard end <= ramLayout.lowRAMTop else {
            throw ConfigurationError.kernelDoesNotFit("it needs \(formatBytes(footprint)) from 1 MiB")
        }
        try memory.write(Array(payload), at: GuestAddress(address))
        return (address, end)
    }

    /// A relocatable kernel goes to its preferred address (pref_address), as the boot protocol asks
    /// of a relocating loader; any other, or one whose preferred place is odd or does not fit, to
    /// 1 MiB. Why it matters: Linux decompresses itself to 16 MiB or above whatever its load address,
    /// so a compressed image loaded at 1 MiB stays behind in the guest's DMA zone (below 16 MiB) as
    /// free memory that free page reporting never returns (it skips a zone whose free memory is
    /// under its low watermark plus 32 blocks, and the DMA zone is 16 MiB). Measured with Debian's
    /// cloud kernel, 1 GiB: 16 MiB of guest RAM below 16 MiB stayed resident on the host loaded at
    /// 1 MiB, in Ebb and in QEMU alike (which loads there), and 2 MiB booted through PVH.
    static func loadAddress(of header: SetupHeader, footprintBytes: UInt64, lowRAMTop: UInt64) -> UInt64 {
        let preferred = header.preferredLoadAddress
        let alignment = max(UInt64(header.kernelAlignmentBytes), GuestPage.bytes)
        guard header.isRelocatable, alignment.nonzeroBitCount == 1,
              preferred > Layout.bzImageLoadAddress, preferred % alignment == 0,
              preferred <= lowRAMTop, footprintBytes <= lowRAMTop - preferred else {
            return Layout.bzImageLoadAddress
        }
        return preferred
    }

    /// Copies each PT_LOAD segment to its physical address and zeroes the rest of it (.bss).
    private func loadELF(_ elf: ELFKernel, image: [UInt8]) throws -> UInt64 {
        var end: UInt64 = 0
        for segment in elf.segments {
            let start = segment.physicalAddress
            guard start >= Layout.highMemoryStart,
                  memory.contains(GuestAddress(start), length: segment.memorySizeBytes) else {
                throw ConfigurationError.kernelDoesNotFit(
                    "a segment wants [0x\(String(start, radix: 16)), +\(formatBytes(segment.memorySizeBytes))), outside RAM above 1 MiB")
            }
            try memory.withBytes(at: GuestAddress(start), length: segment.memorySizeBytes) { destination in
                image.withUnsafeBytes { source in
                    let bytes = UnsafeRawBufferPointer(rebasing: source[segment.fileOffset..<segment.fileOffset + segment.fileSizeBytes])
                    destination.copyMemory(from: bytes)
                }
                let bss = UnsafeMutableRawBufferPointer(rebasing: destination[segment.fileSizeBytes...])
                bss.initializeMemory(as: UInt8.self, repeating: 0)
            }
            end = max(end, start + segment.memorySizeBytes)
        }
        return end
    }

    /// Puts the initrd as high as it may go (below `limit`, page-aligned) and above the kernel.
    private func placeInitrd(_ initrd: [UInt8], above kernelEnd: UInt64, below limit: UInt64) throws -> (address: UInt64, sizeBytes: UInt64) {
        let size = UInt64(initrd.count)
        let page = GuestPage.bytes
        guard size > 0, limit >= size, (limit - size) & ~(page - 1) >= (kernelEnd + page - 1) & ~(page - 1) else {
            throw ConfigurationError.initrdDoesNotFit(sizeBytes: size)
        }
        let address = (limit - size) & ~(page - 1)
        try memory.write(initrd, at: GuestAddress(address))
        return (address, size)
    }

    /// PML4 -> PDPT -> 4 page directories of 2 MiB pages: the first 4 GiB mapped 1:1, which is what
    /// the 64-bit boot protocol requires for the kernel, boot_params and the command line.
    private func writeIdentityPageTables() throws {
        let present: UInt64 = 0x3 // present | writable
        let largePage: UInt64 = 0x80
        try memory.store(Layout.pdptAddress | present, at: GuestAddress(Layout.pml4Address))
        for gib in 0..<Layout.identityMappedGiB {
            let directory = Layout.pageDirectoryAddress + gib * 0x1000
            try memory.store(directory | present, at: GuestAddress(Layout.pdptAddress + gib * 8))
            var entries = [UInt8]()
            entries.reserveCapacity(4096)
            for index in 0..<UInt64(512) {
                let frame = (gib << 30) | (index << 21)
                withUnsafeBytes(of: (frame | present | largePage).littleEndian) { entries += $0 }
            }
            try memory.write(entries, at: GuestAddress(directory))
        }
    }
}
