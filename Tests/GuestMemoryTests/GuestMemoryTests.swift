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
}
