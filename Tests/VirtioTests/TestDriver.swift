import GuestMemory
@testable import Virtio

/// The driver's side of one split queue, written straight into guest memory, so tests can build
/// well-formed and hostile rings alike.
struct TestDriver {
    let memory: GuestMemory
    let size: UInt16
    let descriptorTable: UInt64
    let availRing: UInt64
    let usedRing: UInt64
    var availIndex: UInt16 = 0

    /// Rings at `base` (descriptor table, avail ring 4 KiB later, used ring 8 KiB later).
    init(memory: GuestMemory, size: UInt16, base: UInt64 = 0x10000) {
        self.memory = memory
        self.size = size
        descriptorTable = base
        availRing = base + 0x1000
        usedRing = base + 0x2000
    }

    var configuration: QueueConfiguration {
        var configuration = QueueConfiguration(size: size)
        configuration.descriptorTable = descriptorTable
        configuration.availRing = availRing
        configuration.usedRing = usedRing
        return configuration
    }

    /// Zeroes the rings, as a driver that allocates fresh rings after a reset has them.
    func clear() throws {
        try memory.write([UInt8](repeating: 0, count: 0x3000), at: GuestAddress(descriptorTable))
    }

    func setDescriptor(_ index: UInt16, address: UInt64, length: UInt32, flags: UInt16 = 0, next: UInt16 = 0) throws {
        try writeDescriptor(in: descriptorTable, index, address: address, length: length, flags: flags, next: next)
    }

    /// Entry `index` of a descriptor table at `table`: the ring's, or an indirect one.
    func writeDescriptor(in table: UInt64, _ index: UInt16, address: UInt64, length: UInt32, flags: UInt16 = 0, next: UInt16 = 0) throws {
        let base = table + 16 * UInt64(index)
        try memory.store(address, at: GuestAddress(base))
        try memory.store(length, at: GuestAddress(base + 8))
        try memory.store(flags, at: GuestAddress(base + 12))
        try memory.store(next, at: GuestAddress(base + 14))
    }

    /// Publishes `head` in the next avail slot.
    mutating func makeAvailable(_ head: UInt16) throws {
        try memory.store(head, at: GuestAddress(availRing + 4 + 2 * UInt64(availIndex % size)))
        availIndex &+= 1
        try memory.store(availIndex, at: GuestAddress(availRing + 2))
    }

    /// Sets the avail index to anything, as a hostile driver may.
    func forceAvailIndex(_ value: UInt16) throws {
        try memory.store(value, at: GuestAddress(availRing + 2))
    }

    func usedIndex() throws -> UInt16 { try memory.load(UInt16.self, at: GuestAddress(usedRing + 2)) }

    func usedEntry(_ slot: UInt16) throws -> (id: UInt32, length: UInt32) {
        let base = usedRing + 4 + 8 * UInt64(slot % size)
        return (try memory.load(UInt32.self, at: GuestAddress(base)), try memory.load(UInt32.self, at: GuestAddress(base + 4)))
    }
}

func makeMemory(megabytes: UInt64 = 16, hugePages: Bool = false) throws -> GuestMemory {
    try GuestMemory(regions: [GuestRange(start: GuestAddress(0), length: megabytes << 20)!], hugePages: hugePages)
}
