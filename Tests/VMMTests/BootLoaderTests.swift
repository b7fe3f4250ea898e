import GuestMemory
import LinuxBoot
import BootImageFixtures
import Testing
@testable import VMM

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

    /// A relocatable bzImage goes to its pref_address (16 MiB), so the compressed image Linux leaves
    /// behind is not in the DMA zone; any other to 1 MiB. The entry is 0x200 past it either way.
    @Test func bzImageGoesToItsPreferredAddressWhenRelocatable() throws {
        let (entry, memory) = try load(kernel: makeBzImage(relocatable: true))
        #expect(entry == .longMode(entry: 0x100_0200, bootParams: Layout.bootParamsAddress))
        #expect(try memory.load(UInt8.self, at: GuestAddress(0x100_0000)) == 0xf4)
        #expect(try memory.load(UInt8.self, at: GuestAddress(0x10_0000)) == 0)
        #expect(try memory.load(UInt32.self, at: GuestAddress(Layout.bootParamsAddress + 0x214)) == 0x100_0000)

        let (fixed, fixedMemory) = try load(kernel: makeBzImage(relocatable: false))
        #expect(fixed == .longMode(entry: 0x10_0200, bootParams: Layout.bootParamsAddress))
        #expect(try fixedMemory.load(UInt8.self, at: GuestAddress(0x10_0000)) == 0xf4)
        #expect(try fixedMemory.load(UInt32.self, at: GuestAddress(Layout.bootParamsAddress + 0x214)) == 0x10_0000)
    }

    @Test func aPreferredAddressThatIsMisalignedOrDoesNotFitFallsBackTo1MiB() throws {
        let odd = try SetupHeader(image: makeBzImage(relocatable: true, preferredAddress: 0x100_1000))
        #expect(BootLoader.loadAddress(of: odd, footprintBytes: 0x40_0000, lowRAMTop: 64 << 20) == 0x10_0000)
        let preferred = try SetupHeader(image: makeBzImage(relocatable: true))
        #expect(BootLoader.loadAddress(of: preferred, footprintBytes: 0x40_0000, lowRAMTop: 64 << 20) == 0x100_0000)
        #expect(BootLoader.loadAddress(of: preferred, footprintBytes: 0x40_0000, lowRAMTop: 18 << 20) == 0x10_0000)
        #expect(BootLoader.loadAddress(of: preferred, footprintBytes: 0x40_0000, lowRAMTop: 8 << 20) == 0x10_0000)
    }

    @Test func commandLineLongerThanAPageIsRefused() {
        #expect(throws: BootImageError.self) { try load(commandLine: String(repeating: "x", count: 5000)) }
    }
}
