import Testing
@testable import GuestMemory

@Suite struct GuestMemoryTests {
    let page: UInt64 = 4096

    func twoRegions() throws -> GuestMemory {
        try GuestMemory(regions: [
            GuestRange(start: GuestAddress(0), length: 16 * page)!,
            GuestRange(start: GuestAddress(0x1_0000_0000), length: 4 * page)!,
        ])
    }

    @Test func readsBackWhatItWrites() throws {
        let memory = try twoRegions()
        try memory.write([1, 2, 3, 4], at: GuestAddress(0x1000))
        #expect(try memory.read(at: GuestAddress(0x1000), count: 4) == [1, 2, 3, 4])
        try memory.store(UInt64(0x1122_3344_5566_7788), at: GuestAddress(0x1_0000_0003))
        #expect(try memory.load(UInt64.self, at: GuestAddress(0x1_0000_0003)) == 0x1122_3344_5566_7788)
        #expect(try memory.load(UInt8.self, at: GuestAddress(0x1_0000_0003)) == 0x88)
    }

    @Test func rejectsEveryAccessOutsideRAM() throws {
        let memory = try twoRegions()
        let end = 16 * page
        #expect(throws: GuestMemoryError.self) { try memory.read(at: GuestAddress(end), count: 1) }
        // Straddling the end of a region (into the hole) is refused whole.
        #expect(throws: GuestMemoryError.self) { try memory.read(at: GuestAddress(end - 2), count: 4) }
        #expect(throws: GuestMemoryError.self) { try memory.store(UInt32(1), at: GuestAddress(UInt64.max - 1)) }
        #expect(throws: GuestMemoryError.self) { try memory.load(UInt64.self, at: GuestAddress(0x1_0000_0000 + 4 * page - 4)) }
        #expect(!memory.contains(GuestAddress(UInt64.max), length: 2))
        #expect(memory.contains(GuestAddress(end - 1), length: 1))
    }

    @Test func rangeArithmeticNeverWraps() {
        #expect(GuestRange(start: GuestAddress(UInt64.max), length: 2) == nil)
        #expect(GuestAddress(UInt64.max).adding(1) == nil)
        #expect(GuestAddress(1).adding(2) == GuestAddress(3))
    }

    @Test func layoutMustBeAlignedAndOrdered() {
        #expect(throws: GuestMemoryError.self) {
            try GuestMemory(regions: [GuestRange(start: GuestAddress(0), length: 100)!])
        }
        #expect(throws: GuestMemoryError.self) {
            try GuestMemory(regions: [GuestRange(start: GuestAddress(0x2000), length: 0x2000)!,
                                      GuestRange(start: GuestAddress(0x1000), length: 0x1000)!])
        }
    }

    @Test func discardGivesPagesBackAndTheyReadAsZero() throws {
        let memory = try twoRegions()
        try memory.write([UInt8](repeating: 0xab, count: Int(4 * page)), at: GuestAddress(4 * page))
        // Partial pages at the edges stay: only the two whole pages inside are dropped.
        let range = GuestRange(start: GuestAddress(4 * page + 1), length: 3 * page)!
        #expect(try memory.discard(range) == 2 * page)
        #expect(try memory.load(UInt8.self, at: GuestAddress(4 * page)) == 0xab)
        #expect(try memory.load(UInt8.self, at: GuestAddress(5 * page)) == 0)
        #expect(try memory.load(UInt8.self, at: GuestAddress(7 * page - 1)) == 0)
        #expect(try memory.load(UInt8.self, at: GuestAddress(7 * page)) == 0xab)
        #expect(throws: GuestMemoryError.self) {
            try memory.discard(GuestRange(start: GuestAddress(15 * page), length: 2 * page)!)
        }
    }

    /// KVM can map a guest 2 MiB block with a host huge page only if both share their offset within
    /// 2 MiB. Sizes that are not multiples of 2 MiB below the hole must not shift the region above.
    @Test func everyRegionSharesItsOffsetWithin2MiBWithTheHost() throws {
        let huge = GuestMemory.hugePageBytes
        let layouts: [[GuestRange]] = [
            [GuestRange(start: GuestAddress(0), length: 513 << 20)!,
             GuestRange(start: GuestAddress(0x1_0000_0000), length: 3 * page)!],
            [GuestRange(start: GuestAddress(0), length: 3 * page)!,
             GuestRange(start: GuestAddress(0x20_1000), length: page)!,
             GuestRange(start: GuestAddress(0x1_0000_0000), length: huge + page)!],
        ]
        for layout in layouts {
            let memory = try GuestMemory(regions: layout)
            #expect(memory.hostMapping.start % huge == 0)
            #expect(memory.sizeBytes == layout.reduce(0) { $0 + $1.length })
            for region in memory.regions {
                #expect(memory.hostAddress(of: region) % huge == region.guestRange.start.value % huge, "\(region)")
            }
            // Regions do not overlap inside the host mapping.
            for (a, b) in zip(memory.regions, memory.regions.dropFirst()) {
                #expect(a.hostOffset + a.guestRange.length <= b.hostOffset)
            }
            // The last byte of each region is reachable and distinct from the first of the next.
            for (index, region) in memory.regions.enumerated() {
                try memory.store(UInt8(index + 1), at: GuestAddress(region.guestRange.end - 1))
            }
            for (index, region) in memory.regions.enumerated() {
                #expect(try memory.load(UInt8.self, at: GuestAddress(region.guestRange.end - 1)) == UInt8(index + 1))
            }
            // Resident on the host: the one page written in each region, nothing else of the
            // mapping (no huge pages asked for), wherever its regions lie.
            #expect(memory.residentHostBytes == UInt64(memory.regions.count) * page)
            _ = try memory.discard(memory.regions[0].guestRange)
            #expect(memory.residentHostBytes == UInt64(memory.regions.count - 1) * page)
        }
    }

    /// The trim that aligns the mapping, for a start address a Debian 12 (Linux 6.1) host gave Ebb.
    @Test func aMisalignedReservationIsTrimmedToA2MiBBoundary() {
        let huge = GuestMemory.hugePageBytes
        let start: UInt64 = 0x7f08_f199_b000
        let needed: UInt64 = 1 << 30
        let trim = GuestMemory.alignedWindow(mappingStart: start, reservedBytes: needed + huge, neededBytes: needed, alignment: huge)
        #expect((start + trim.headBytes) % huge == 0)
        #expect(trim.headBytes == 0x65000)
        #expect(trim.headBytes + needed + trim.tailBytes == needed + huge)
        let aligned = GuestMemory.alignedWindow(mappingStart: 0x7f08_f1a0_0000, reservedBytes: needed + huge, neededBytes: needed, alignment: huge)
        #expect(aligned.headBytes == 0 && aligned.tailBytes == huge)
    }
}
