import GuestMemory
import Synchronization

/// What the driver programmed for one queue through the transport registers.
public struct QueueConfiguration: Sendable, Equatable {
    public var size: UInt16
    public var ready = false
    public var descriptorTable: UInt64 = 0
    public var availRing: UInt64 = 0
    public var usedRing: UInt64 = 0

    public init(size: UInt16) { self.size = size }
}

/// One buffer of a descriptor chain, already checked to lie inside guest RAM.
public struct Descriptor: Sendable, Equatable {
    public let address: GuestAddress
    public let length: UInt32
    /// VIRTQ_DESC_F_WRITE: the device writes this buffer (the driver reads it).
    public let isDeviceWritable: Bool
}

/// A whole chain, copied out of guest memory once and validated before the device sees it.
public struct DescriptorChain: Sendable, Equatable {
    public let head: UInt16
    public let descriptors: [Descriptor]
}

/// A split virtqueue (virtio 1.2, 2.7) driven by a driver Ebb does not trust. Every index and
/// address read from guest memory is checked before use; any violation throws a `QueueError`.
public struct SplitQueue: Sendable {
    enum Flag {
        static let next: UInt16 = 1
        static let write: UInt16 = 2
        static let indirect: UInt16 = 4
        /// VIRTQ_AVAIL_F_NO_INTERRUPT
        static let noInterrupt: UInt16 = 1
        /// VIRTQ_USED_F_NO_NOTIFY
        static let noNotify: UInt16 = 1
    }
    static let descriptorBytes: UInt64 = 16
    /// A chain's buffers may not add up to more than this (virtio 1.2, 2.7.5: 2^32).
    static let maximumChainBytes: UInt64 = 1 << 32
    /// The most entries an indirect table may have (QEMU's limit, VIRTQUEUE_MAX_SIZE).
    public static let maximumIndirectEntries = 1024

    public let size: UInt16
    let descriptorTable: GuestAddress
    let availRing: GuestAddress
    let usedRing: GuestAddress
    /// The next avail ring slot the device will read, and the next used index it will publish.
    public private(set) var nextAvail: UInt16 = 0
    public private(set) var nextUsed: UInt16 = 0
    /// VIRTIO_F_RING_EVENT_IDX negotiated: `used_event` and `avail_event` replace the flags.
    public let eventIndex: Bool
    /// With `eventIndex`: the used index when an interrupt was last decided on; nil before.
    private var signalledUsed: UInt16?
    /// VIRTIO_F_INDIRECT_DESC negotiated: a chain may end in a descriptor naming a table.
    public let indirectDescriptors: Bool

    /// Validates the driver's configuration: power-of-two size, aligned rings inside guest RAM
    /// (their lengths include `used_event` and `avail_event`, which every driver lays out).
    public init(_ configuration: QueueConfiguration, maximumSize: UInt16, memory: GuestMemory, eventIndex: Bool = false,
                indirectDescriptors: Bool = false) throws(QueueError) {
        let size = configuration.size
        guard size > 0, size & (size - 1) == 0 else { throw .notPowerOfTwo(size: size) }
        guard size <= maximumSize else { throw .sizeTooLarge(size: size, maximum: maximumSize) }
        let count = UInt64(size)
        let rings: [(String, UInt64, UInt64, UInt64)] = [
            ("descriptor", configuration.descriptorTable, 16, Self.descriptorBytes * count),
            ("avail", configuration.availRing, 2, 6 + 2 * count),
            ("used", configuration.usedRing, 4, 6 + 8 * count),
        ]
        for (name, address, alignment, length) in rings {
            guard address % alignment == 0 else { throw .misaligned(ring: name, address: address) }
            guard memory.contains(GuestAddress(address), length: length) else { throw .ringOutsideRAM(ring: name, address: address) }
        }
        self.size = size
        descriptorTable = GuestAddress(configuration.descriptorTable)
        availRing = GuestAddress(configuration.availRing)
        usedRing = GuestAddress(configuration.usedRing)
        self.eventIndex = eventIndex
        self.indirectDescriptors = indirectDescriptors
    }

    private var usedEventOffset: UInt64 { 4 + 2 * UInt64(size) }
    private var availEventOffset: UInt64 { 4 + 8 * UInt64(size) }

    /// The next chain the driver made available, or nil when there is none.
    public mutating func popChain(memory: GuestMemory) throws(QueueError) -> DescriptorChain? {
        var availIndex = try load(UInt16.self, availRing, offset: 2, memory: memory)
        if availIndex == nextAvail {
            guard eventIndex else { return nil }
            // Empty: ask for a notification at the next entry, then look once more (one made
            // available before the driver saw avail_event sends none).
            try store(nextAvail, usedRing, offset: availEventOffset, memory: memory)
            atomicMemoryFence(ordering: .sequentiallyConsistent)
            availIndex = try load(UInt16.self, availRing, offset: 2, memory: memory)
            if availIndex == nextAvail { return nil }
        }
        let pending = availIndex &- nextAvail
        guard pending <= size else { throw .availIndexTooFarAhead(pending: pending, size: size) }
        // Read the ring entry only after seeing the index that published it.
        atomicMemoryFence(ordering: .acquiring)
        let head = try load(UInt16.self, availRing, offset: 4 + 2 * UInt64(nextAvail % size), memory: memory)
        guard head < size else { throw .headOutOfRange(index: head, size: size) }

        var descriptors: [Descriptor] = []
        var totalBytes: UInt64 = 0
        // The table being walked: the ring's, or the indirect one the chain ended in (virtio
        // 1.2, 2.7.5.3: direct descriptors, then at most one naming a table, which holds the
        // rest). A walk longer than its table loops.
        var table = descriptorTable
        var tableEntries = Int(size)
        var inIndirectTable = false
        var walked = 0
        var index = head
        while true {
            guard walked < tableEntries else { throw .chainTooLong(limit: tableEntries) }
            walked += 1
            let (address, length, flags, next) = try loadDescriptor(table, offset: Self.descriptorBytes * UInt64(index), memory: memory)
            if flags & Flag.indirect != 0 {
                guard indirectDescriptors else { throw .indirectNotNegotiated }
                guard !inIndirectTable else { throw .nestedIndirect }
                let entries = Int(length) / Int(Self.descriptorBytes)
                guard length % UInt32(Self.descriptorBytes) == 0, entries > 0, entries <= Self.maximumIndirectEntries else {
                    throw .badIndirectTable(length: length)
                }
                guard memory.contains(GuestAddress(address), length: UInt64(length)) else {
                    throw .bufferOutsideRAM(address: address, length: length)
                }
                // Its own write and next flags mean nothing: the table's first entry follows.
                table = GuestAddress(address)
                tableEntries = entries
                // A NIC's frame: a table of up to 18 buffers, grown into one by one otherwise.
                descriptors.reserveCapacity(descriptors.count + min(entries, 64))
                inIndirectTable = true
                walked = 0
                index = 0
                continue
            }
            guard length == 0 || memory.contains(GuestAddress(address), length: UInt64(length)) else {
                throw .bufferOutsideRAM(address: address, length: length)
            }
            totalBytes += UInt64(length)
            guard totalBytes <= Self.maximumChainBytes else { throw .chainTooLarge(totalBytes: totalBytes) }
            descriptors.append(Descriptor(address: GuestAddress(address), length: length, isDeviceWritable: flags & Flag.write != 0))
            guard flags & Flag.next != 0 else { break }
            guard Int(next) < tableEntries else { throw .nextOutOfRange(index: next, size: UInt16(clamping: tableEntries)) }
            index = next
        }
        nextAvail &+= 1
        return DescriptorChain(head: head, descriptors: descriptors)
    }

    /// Returns a chain to the driver with `length` bytes written into it.
    public mutating func pushUsed(head: UInt16, length: UInt32, memory: GuestMemory) throws(QueueError) {
        // struct virtq_used_elem { le32 id; le32 len; }, written as one little-endian 64-bit value.
        let slot = 4 + 8 * UInt64(nextUsed % size)
        try store(UInt64(head) | UInt64(length) << 32, usedRing, offset: slot, memory: memory)
        // The entry must be visible before the index that publishes it.
        atomicMemoryFence(ordering: .releasing)
        nextUsed &+= 1
        try store(nextUsed, usedRing, offset: 2, memory: memory)
    }

    /// Sets or clears VIRTQ_USED_F_NO_NOTIFY: while a device drains a queue, the driver's
    /// notifications (each an exit) tell it nothing new. After clearing it the device must look
    /// at the ring once more: a chain made available before the driver saw the flag clear sends
    /// no notification. A full fence orders the flag before that look.
    /// With `eventIndex` the flag means nothing to the driver: an `avail_event` left behind the
    /// driver's index asks for no notification, and enabling sets it to the next entry.
    public func setNotifications(enabled: Bool, memory: GuestMemory) {
        if eventIndex {
            if enabled { try? store(nextAvail, usedRing, offset: availEventOffset, memory: memory) }
        } else {
            try? store(enabled ? 0 : Flag.noNotify, usedRing, offset: 0, memory: memory)
        }
        if enabled { atomicMemoryFence(ordering: .sequentiallyConsistent) }
    }

    /// Whether the driver wants an interrupt for what was used since this was last asked: unless
    /// it set VIRTQ_AVAIL_F_NO_INTERRUPT or, with `eventIndex`, unless the used index has not
    /// passed its `used_event` (virtio 1.2, 2.7.10; the first time, always). A hostile value only
    /// costs the guest its own interrupts.
    public mutating func wantsInterrupt(memory: GuestMemory) -> Bool {
        guard eventIndex else {
            let flags = (try? load(UInt16.self, availRing, offset: 0, memory: memory)) ?? 0
            return flags & Flag.noInterrupt == 0
        }
        // The used index was published before used_event is read.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        defer { signalledUsed = nextUsed }
        guard let old = signalledUsed, let event = try? load(UInt16.self, availRing, offset: usedEventOffset, memory: memory) else {
            return true
        }
        return nextUsed &- event &- 1 < nextUsed &- old
    }

    private func load<T: FixedWidthInteger>(_ type: T.Type, _ ring: GuestAddress, offset: UInt64, memory: GuestMemory) throws(QueueError) -> T {
        do { return try memory.load(T.self, at: GuestAddress(ring.value &+ offset)) } catch {
            throw .ringOutsideRAM(ring: "queue", address: ring.value &+ offset)
        }
    }

    /// struct virtq_desc { le64 addr; le32 len; le16 flags; le16 next; }, read at once (one
    /// bounds check, not four: a NIC takes dozens of chains a frame).
    private func loadDescriptor(_ table: GuestAddress, offset: UInt64, memory: GuestMemory) throws(QueueError)
        -> (address: UInt64, length: UInt32, flags: UInt16, next: UInt16) {
        do {
            return try memory.withBytes(at: GuestAddress(table.value &+ offset), length: Self.descriptorBytes) { bytes in
                (UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self)),
                 UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self)),
                 UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 12, as: UInt16.self)),
                 UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 14, as: UInt16.self)))
            }
        } catch {
            throw .ringOutsideRAM(ring: "queue", address: table.value &+ offset)
        }
    }

    private func store<T: FixedWidthInteger>(_ value: T, _ ring: GuestAddress, offset: UInt64, memory: GuestMemory) throws(QueueError) {
        do { try memory.store(value, at: GuestAddress(ring.value &+ offset)) } catch {
            throw .ringOutsideRAM(ring: "used", address: ring.value &+ offset)
        }
    }
}
