import GuestMemory
import LinuxBoot
import Testing
@testable import VMM

/// An ELF64 kernel of one 4 KiB segment at `address`, with a PVH note (entry = address).
func tinyPVHKernel(at address: UInt64 = 0x100000) -> [UInt8] {
    var image = [UInt8](repeating: 0, count: 0x2000)
    func put<T: FixedWidthInteger>(_ value: T, _ offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { image[offset + i] = b } }
    }
    image.replaceSubrange(0..<4, with: [0x7f, 0x45, 0x4c, 0x46])
    image[4] = 2; image[5] = 1
    put(UInt16(62), 18); put(UInt64(64), 32); put(UInt16(56), 54); put(UInt16(2), 56)
    put(UInt32(1), 64); put(UInt64(0x1000), 72); put(address, 88); put(UInt64(0x1000), 96); put(UInt64(0x3000), 104)
    put(UInt32(4), 120); put(UInt64(0x300), 128); put(UInt64(20), 152)
    put(UInt32(4), 0x300); put(UInt32(4), 0x304); put(UInt32(18), 0x308)
    image.replaceSubrange(0x30c..<0x310, with: Array("Xen\0".utf8))
    put(UInt32(truncatingIfNeeded: address), 0x310)
    image[0x1000] = 0xf4 // hlt, so the segment has recognisable bytes
    return image
}

@Suite struct GuestRAMLayoutTests {
    @Test func smallGuestHasConventionalMemoryAReservedHoleAndHighRAM() {
        let layout = GuestRAMLayout(memoryBytes: 512 << 20)
        #expect(layout.regions.map(\.length) == [512 << 20])
        #expect(layout.memoryMap == [
            MemoryMapEntry(address: 0, sizeBytes: 0xa0000, kind: .ram),
            MemoryMapEntry(address: 0xe0000, sizeBytes: 0x20000, kind: .reserved),
            MemoryMapEntry(address: 0x100000, sizeBytes: (512 << 20) - 0x100000, kind: .ram),
        ])
    }

    @Test func largeGuestContinuesAbove4GiB() {
        let layout = GuestRAMLayout(memoryBytes: 4 << 30)
        #expect(layout.regions.map(\.start.value) == [0, 1 << 32])
        #expect(layout.regions.map(\.length) == [3 << 30, 1 << 30])
        #expect(layout.lowRAMTop == 3 << 30)
        #expect(layout.memoryMap.last == MemoryMapEntry(address: 1 << 32, sizeBytes: 1 << 30, kind: .ram))
    }
}

@Suite struct BootLoaderTests {
    func load(memoryBytes: UInt64 = 64 << 20, commandLine: String = "console=ttyS0", initrd: [UInt8]? = nil,
              kernel: [UInt8] = tinyPVHKernel()) throws -> (BootEntry, GuestMemory) {
        let layout = GuestRAMLayout(memoryBytes: memoryBytes)
        let memory = try GuestMemory(regions: layout.regions)
        let entry = try BootLoader(memory: memory, ramLayout: layout)
            .load(kernel: try KernelImage(bytes: kernel), commandLine: commandLine, initrd: initrd, rsdpAddress: 0xe0000)
        return (entry, memory)
    }

    @Test func pvhKernelIsLoadedWithItsStartInfo() throws {
        let (entry, memory) = try load(initrd: [UInt8](repeating: 7, count: 10_000))
        #expect(entry == .pvh(entry: 0x100000, startInfo: Layout.pvhStartInfoAddress))
        #expect(try memory.load(UInt8.self, at: GuestAddress(0x100000)) == 0xf4)
        #expect(try memory.load(UInt8.self, at: GuestAddress(0x102fff)) == 0) // .bss zeroed
        #expect(try memory.load(UInt32.self, at: GuestAddress(Layout.pvhStartInfoAddress)) == StartInfo.magic)
        #expect(try memory.read(at: GuestAddress(Layout.commandLineAddress), count: 14) == Array("console=ttyS0\0".utf8))
        // The initrd sits page-aligned at the top of RAM.
        let initrdAddress = try memory.load(UInt64.self, at: GuestAddress(Layout.pvhStartInfoAddress + 56))
        #expect(initrdAddress == ((64 << 20) - 10_000) & ~4095)
        #expect(try memory.load(UInt8.self, at: GuestAddress(initrdAddress)) == 7)
    }

    @Test func anInitrdThatWouldOverlapTheKernelIsRefused() {
        #expect(throws: ConfigurationError.initrdDoesNotFit(sizeBytes: 63 << 20)) {
            try load(initrd: [UInt8](repeating: 1, count: 63 << 20))
        }
    }

    @Test func segmentsBelow1MiBOrOutsideRAMAreRefused() {
        #expect(throws: ConfigurationError.self) { try load(kernel: tinyPVHKernel(at: 0x8000)) }
        #expect(throws: ConfigurationError.self) { try load(kernel: tinyPVHKernel(at: 0x7fff_f000)) }
    }

    @Test func commandLineLongerThanAPageIsRefused() {
        #expect(throws: BootImageError.self) { try load(commandLine: String(repeating: "x", count: 5000)) }
    }
}
