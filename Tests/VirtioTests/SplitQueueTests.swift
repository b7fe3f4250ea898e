import GuestMemory
import Testing
@testable import Virtio

@Suite struct SplitQueueTests {
    @Test func popsAChainAndPublishesItUsed() throws {
        let memory = try makeMemory()
        var driver = TestDriver(memory: memory, size: 8)
        try driver.setDescriptor(0, address: 0x100000, length: 4096, flags: 1, next: 3)
        try driver.setDescriptor(3, address: 0x200000, length: 512, flags: 2)
        try driver.makeAvailable(0)
        var queue = try SplitQueue(driver.configuration, maximumSize: 8, memory: memory)
        let chain = try #require(try queue.popChain(memory: memory))
        #expect(chain.head == 0)
        #expect(chain.descriptors == [
            Descriptor(address: GuestAddress(0x100000), length: 4096, isDeviceWritable: false),
            Descriptor(address: GuestAddress(0x200000), length: 512, isDeviceWritable: true),
        ])
        #expect(try queue.popChain(memory: memory) == nil)
        try queue.pushUsed(head: 0, length: 7, memory: memory)
        #expect(try driver.usedIndex() == 1)
        #expect(try driver.usedEntry(0) == (0, 7))
    }

    /// VIRTIO_F_RING_EVENT_IDX: an interrupt only once the used index passes the driver's
    /// used_event, and an empty ring asks for a notification at the next entry (avail_event).
    @Test func eventIndicesDecideInterruptsAndNotifications() throws {
        let memory = try makeMemory()
        var driver = TestDriver(memory: memory, size: 8)
        try driver.setDescriptor(0, address: 0x100000, length: 8)
        var queue = try SplitQueue(driver.configuration, maximumSize: 8, memory: memory, eventIndex: true)
        let usedEvent = GuestAddress(driver.availRing + 4 + 2 * 8), availEvent = GuestAddress(driver.usedRing + 4 + 8 * 8)
        #expect(try queue.popChain(memory: memory) == nil)
        #expect(try memory.load(UInt16.self, at: availEvent) == 0)
        for round in 1...3 {
            try driver.makeAvailable(0)
            let chain = try #require(try queue.popChain(memory: memory))
            try queue.pushUsed(head: chain.head, length: 0, memory: memory)
            // The first decision always interrupts; then the driver asks for one after entry 2.
            try memory.store(UInt16(2), at: usedEvent)
            let wanted = queue.wantsInterrupt(memory: memory)
            #expect(wanted == (round != 2), "round \(round)")
            #expect(try queue.popChain(memory: memory) == nil)
            #expect(try memory.load(UInt16.self, at: availEvent) == UInt16(round))
        }
        // The flags mean nothing now: VIRTQ_AVAIL_F_NO_INTERRUPT does not suppress the interrupt.
        try memory.store(UInt16(1), at: GuestAddress(driver.availRing))
        try memory.store(UInt16(3), at: usedEvent)
        try driver.makeAvailable(0)
        let chain = try #require(try queue.popChain(memory: memory))
        try queue.pushUsed(head: chain.head, length: 0, memory: memory)
        let wanted = queue.wantsInterrupt(memory: memory)
        #expect(wanted)
    }

    /// VIRTIO_F_INDIRECT_DESC: a chain whose descriptor names a table continues in that table,
    /// after any direct descriptors before it; the indirect descriptor's own flags mean nothing.
    @Test func indirectTablesHoldTheRestOfAChain() throws {
        let memory = try makeMemory()
        var driver = TestDriver(memory: memory, size: 8)
        let table: UInt64 = 0x300000
        func entry(_ index: UInt16, address: UInt64, length: UInt32, flags: UInt16, next: UInt16 = 0) throws {
            try driver.writeDescriptor(in: table, index, address: address, length: length, flags: flags, next: next)
        }
        try entry(0, address: 0x100000, length: 12, flags: 1, next: 2)
        try entry(2, address: 0x101000, length: 4096, flags: 1 | 2, next: 1)
        try entry(1, address: 0x102000, length: 100, flags: 2)
        try driver.setDescriptor(0, address: table, length: 48, flags: 4 | 2)
        try driver.setDescriptor(5, address: 0x200000, length: 8, flags: 1, next: 6)
        try driver.setDescriptor(6, address: table, length: 48, flags: 4)
        try driver.makeAvailable(0)
        try driver.makeAvailable(5)
        var queue = try SplitQueue(driver.configuration, maximumSize: 8, memory: memory, indirectDescriptors: true)
        let tableDescriptors = [
            Descriptor(address: GuestAddress(0x100000), length: 12, isDeviceWritable: false),
            Descriptor(address: GuestAddress(0x101000), length: 4096, isDeviceWritable: true),
            Descriptor(address: GuestAddress(0x102000), length: 100, isDeviceWritable: true),
        ]
        #expect(try queue.popChain(memory: memory) == DescriptorChain(head: 0, descriptors: tableDescriptors))
        #expect(try queue.popChain(memory: memory) == DescriptorChain(
            head: 5, descriptors: [Descriptor(address: GuestAddress(0x200000), length: 8, isDeviceWritable: false)] + tableDescriptors))
    }

    @Test func refusesHostileIndirectTables() throws {
        let memory = try makeMemory()
        let table: UInt64 = 0x300000
        func firstPop(tableLength: UInt32, at address: UInt64 = table, _ build: () throws -> Void = {}) throws -> QueueError? {
            for offset in stride(from: UInt64(0), to: 64 * 16, by: 8) { try memory.store(UInt64(0), at: GuestAddress(table + offset)) }
            try build()
            var driver = TestDriver(memory: memory, size: 8)
            try driver.setDescriptor(0, address: address, length: tableLength, flags: 4)
            try driver.makeAvailable(0)
            var queue = try SplitQueue(driver.configuration, maximumSize: 8, memory: memory, indirectDescriptors: true)
            do { _ = try queue.popChain(memory: memory); return nil } catch { return error }
        }
        func entry(_ index: UInt16, address: UInt64, length: UInt32, flags: UInt16, next: UInt16 = 0) throws {
            try TestDriver(memory: memory, size: 8).writeDescriptor(in: table, index, address: address, length: length, flags: flags, next: next)
        }
        #expect(try firstPop(tableLength: 32) == nil)
        // Not a whole number of entries, none, or more than 1024.
        #expect(try firstPop(tableLength: 24) == .badIndirectTable(length: 24))
        #expect(try firstPop(tableLength: 0) == .badIndirectTable(length: 0))
        #expect(try firstPop(tableLength: 1025 * 16) == .badIndirectTable(length: 1025 * 16))
        // A table outside RAM, or straddling its end.
        #expect(try firstPop(tableLength: 32, at: 0x7fff_0000_0000) == .bufferOutsideRAM(address: 0x7fff_0000_0000, length: 32))
        #expect(try firstPop(tableLength: 32, at: (16 << 20) - 16) == .bufferOutsideRAM(address: (16 << 20) - 16, length: 32))
        // A table naming another table.
        #expect(try firstPop(tableLength: 32) { try entry(0, address: table, length: 32, flags: 4) } == .nestedIndirect)
        // A loop inside the table, a next beyond it, a buffer outside RAM.
        #expect(try firstPop(tableLength: 32) { try entry(0, address: 0x100000, length: 8, flags: 1, next: 1); try entry(1, address: 0x100000, length: 8, flags: 1, next: 0) } == .chainTooLong(limit: 2))
        #expect(try firstPop(tableLength: 32) { try entry(0, address: 0x100000, length: 8, flags: 1, next: 2) } == .nextOutOfRange(index: 2, size: 2))
        #expect(try firstPop(tableLength: 32) { try entry(0, address: 0x7fff_0000_0000, length: 8, flags: 0) } == .bufferOutsideRAM(address: 0x7fff_0000_0000, length: 8))
    }

    @Test func indicesWrapAround() throws {
        let memory = try makeMemory()
        var driver = TestDriver(memory: memory, size: 4)
        try driver.setDescriptor(1, address: 0x100000, length: 8)
        var queue = try SplitQueue(driver.configuration, maximumSize: 4, memory: memory)
        for _ in 0..<70_000 {
            try driver.makeAvailable(1)
            let chain = try #require(try queue.popChain(memory: memory))
            try queue.pushUsed(head: chain.head, length: 0, memory: memory)
        }
        #expect(try driver.usedIndex() == UInt16(70_000 % 65_536))
    }

    @Test func refusesBadConfigurations() throws {
        let memory = try makeMemory()
        var driver = TestDriver(memory: memory, size: 6)
        #expect(throws: QueueError.notPowerOfTwo(size: 6)) { try SplitQueue(driver.configuration, maximumSize: 8, memory: memory) }
        driver = TestDriver(memory: memory, size: 16)
        #expect(throws: QueueError.sizeTooLarge(size: 16, maximum: 8)) { try SplitQueue(driver.configuration, maximumSize: 8, memory: memory) }
        var configuration = TestDriver(memory: memory, size: 8).configuration
        configuration.descriptorTable += 8
        #expect(throws: QueueError.self) { try SplitQueue(configuration, maximumSize: 8, memory: memory) }
        configuration = TestDriver(memory: memory, size: 8).configuration
        configuration.usedRing = (16 << 20) - 8
        #expect(throws: QueueError.self) { try SplitQueue(configuration, maximumSize: 8, memory: memory) }
        configuration.usedRing = 0x7fff_0000_0000
        #expect(throws: QueueError.self) { try SplitQueue(configuration, maximumSize: 8, memory: memory) }
    }

    @Test func refusesHostileChains() throws {
        let memory = try makeMemory()
        func firstPop(_ build: (inout TestDriver) throws -> Void) throws -> QueueError? {
            var driver = TestDriver(memory: memory, size: 8)
            for index in 0..<8 { try driver.setDescriptor(UInt16(index), address: 0, length: 0) }
            try driver.forceAvailIndex(0)
            try build(&driver)
            var queue = try SplitQueue(driver.configuration, maximumSize: 8, memory: memory)
            do { _ = try queue.popChain(memory: memory); return nil } catch { return error }
        }
        // A descriptor that points at itself.
        #expect(try firstPop { try $0.setDescriptor(0, address: 0x100000, length: 16, flags: 1, next: 0); try $0.makeAvailable(0) } == .chainTooLong(limit: 8))
        // next beyond the table.
        #expect(try firstPop { try $0.setDescriptor(0, address: 0x100000, length: 16, flags: 1, next: 9); try $0.makeAvailable(0) } == .nextOutOfRange(index: 9, size: 8))
        // head beyond the table.
        #expect(try firstPop { try $0.makeAvailable(12) } == .headOutOfRange(index: 12, size: 8))
        // avail index far ahead of what the device has seen.
        #expect(try firstPop { try $0.forceAvailIndex(13) } == .availIndexTooFarAhead(pending: 13, size: 8))
        // buffers outside RAM, straddling its end, or wrapping the address space.
        #expect(try firstPop { try $0.setDescriptor(0, address: 0x7fff_0000_0000, length: 4096); try $0.makeAvailable(0) } == .bufferOutsideRAM(address: 0x7fff_0000_0000, length: 4096))
        #expect(try firstPop { try $0.setDescriptor(0, address: (16 << 20) - 10, length: 4096); try $0.makeAvailable(0) } != nil)
        #expect(try firstPop { try $0.setDescriptor(0, address: UInt64.max - 100, length: 0xffff_ffff); try $0.makeAvailable(0) } != nil)
        // indirect descriptors were never offered.
        #expect(try firstPop { try $0.setDescriptor(0, address: 0x100000, length: 16, flags: 4); try $0.makeAvailable(0) } == .indirectNotNegotiated)
    }

    @Test func randomRingsNeverTrapTheDevice() throws {
        let memory = try makeMemory(megabytes: 1)
        var generator = SystemRandomNumberGenerator()
        let driver = TestDriver(memory: memory, size: 16)
        for _ in 0..<3000 {
            // Scribble over the descriptor table and avail ring, then let the device try.
            for offset in stride(from: 0, to: 0x1000 + 64, by: 8) {
                let base = offset < 0x100 ? driver.descriptorTable + UInt64(offset) : driver.availRing + UInt64(offset - 0x100)
                try memory.store(UInt64.random(in: 0...UInt64.max, using: &generator) & (Bool.random(using: &generator) ? 0xffff_ffff_ffff_ffff : 0x000f_ffff_0000_ffff), at: GuestAddress(base))
                if offset > 0x140 { break }
            }
            var queue = try SplitQueue(driver.configuration, maximumSize: 16, memory: memory)
            for _ in 0..<20 {
                guard let chain = try? queue.popChain(memory: memory) else { break }
                for descriptor in chain.descriptors where descriptor.length > 0 {
                    #expect(memory.contains(descriptor.address, length: UInt64(descriptor.length)))
                }
                try queue.pushUsed(head: chain.head, length: 0, memory: memory)
            }
        }
    }
}
