#if canImport(Glibc)
import Glibc
#endif
import ByteOrder
import CKVM
import GuestMemory
import Seccomp

/// virtio-net (device id 1): a NIC backed by a tap device on the host. One receive and one
/// transmit queue, served on the device's own thread: frames move straight between the tap and
/// the guest's buffers (`readv`/`writev`, no copy but the 12-byte header the device checks).
/// Nothing is queued inside Ebb: a frame waits in the tap's queue until the guest has posted
/// buffers for it, and the tap drops what does not fit there, as a NIC's ring would.
///
/// Called only by `VirtioMMIOTransport`, which owns it, under its lock (see `VirtioDevice`).
public final class NetDevice: VirtioDevice {
    public struct Options: Sendable, Equatable {
        /// The host's tap interface.
        public var tap: String
        /// The guest's address; none: the driver makes one up (VIRTIO_NET_F_MAC not offered),
        /// as Firecracker without `guest_mac`.
        public var mac: MACAddress?

        public init(tap: String, mac: MACAddress? = nil) {
            self.tap = tap
            self.mac = mac
        }
    }

    /// What the device has done, for the summary, the metrics and the tests.
    public struct Counters: Sendable, Equatable {
        public var receivedFrames: UInt64 = 0
        public var receivedBytes: UInt64 = 0
        public var sentFrames: UInt64 = 0
        public var sentBytes: UInt64 = 0
        /// Transmit chains dropped: malformed (direction, size, header) or refused by the tap.
        public var malformedFrames: UInt64 = 0
        public var sendFailures: UInt64 = 0
        /// Receive chains returned unused because the driver made one the device may not write.
        public var badReceiveChains: UInt64 = 0
        public var receiveFailures: UInt64 = 0

        public init() {}
    }

    public static let id: UInt32 = 1
    enum QueueIndex {
        static let receive = 0
        static let transmit = 1
    }

    public let options: Options
    public let tap: Tap
    public let offeredFeatures: UInt64
    public private(set) var counters = Counters()
    private var negotiated: UInt64 = 0
    /// Receive chains taken from the ring for the next frame, with their sizes and how many of
    /// `waitingVectors` (their buffers, in order, as the tap reads into them) are theirs: kept
    /// from frame to frame, so that a frame costs no allocation (on the emulated host Ebb's own
    /// code runs emulated too).
    private var waiting: [(chain: DescriptorChain, bytes: Int, vectorCount: Int)] = []
    private var waitingBytes = 0
    private var waitingVectors: [iovec] = []
    /// A transmitted frame's header as the driver wrote it, and its buffers: reused likewise.
    private var transmitHeader: [UInt8] = []
    private var transmitVectors: [iovec] = []

    public var name: String { "virtio-net '\(options.tap)'" }
    public var deviceID: UInt32 { Self.id }
    public func queueCount(features: UInt64) -> Int { 2 }
    public func maximumQueueSize(queue index: Int) -> UInt16 { NetLimits.queueSize }
    public var hostEventSources: [Int32] { [tap.pollDescriptor] }
    /// Frames to and from the tap, scattered over guest buffers; the offloads the driver took
    /// (`TUNSETOFFLOAD`, at DRIVER_OK and reset).
    public var hostSystemCalls: [SyscallRule] {
        [SyscallRule("readv"), SyscallRule("writev"), SyscallRule("ioctl", .equal(argument: 1, to: UInt64(EBB_TUNSETOFFLOAD)))]
    }

    public init(options: Options) throws(TapError) {
        self.options = options
        tap = try Tap(name: options.tap)
        var features = VirtioFeature.version1 | NetFeature.status | NetFeature.mtu | NetFeature.mergeableRXBuffers
        if options.mac != nil { features |= NetFeature.mac }
        if tap.takesOffloads { features |= NetFeature.offloads }
        offeredFeatures = features
    }

    public func activate(features: UInt64) {
        negotiated = features
        tap.setOffloads(forDriverFeatures: features)
    }

    public func reset() {
        negotiated = 0
        waiting = []
        waitingBytes = 0
        waitingVectors = []
        tap.setOffloads(forDriverFeatures: 0)
    }

    public func readConfig(offset: UInt64, count: Int) -> [UInt8] {
        var config = [UInt8](repeating: 0, count: NetConfigOffset.length)
        for (index, byte) in (options.mac?.bytes ?? []).enumerated() { config[NetConfigOffset.mac + index] = byte }
        for (index, byte) in littleEndianBytes(UInt64(NetLinkStatus.up), count: 2).enumerated() { config[NetConfigOffset.status + index] = byte }
        for (index, byte) in littleEndianBytes(1, count: 2).enumerated() { config[NetConfigOffset.maxVirtqueuePairs + index] = byte }
        for (index, byte) in littleEndianBytes(UInt64(tap.mtu), count: 2).enumerated() { config[NetConfigOffset.mtu + index] = byte }
        return (0..<count).map { index in
            let (position, overflow) = offset.addingReportingOverflow(UInt64(index))
            return !overflow && position < UInt64(config.count) ? config[Int(position)] : 0
        }
    }

    // Config writes are ignored: the MAC is the device's to set (no VIRTIO_NET_F_CTRL_MAC_ADDR).

    public func process(queueIndex: Int, queue: inout SplitQueue, memory: GuestMemory) throws(QueueError) -> Bool {
        switch queueIndex {
        case QueueIndex.receive: try receive(&queue, memory: memory)
        case QueueIndex.transmit: try transmit(&queue, memory: memory)
        default: false
        }
    }

    /// The tap has frames: into the receive queue, as far as the guest's buffers go.
    public func hostEvent(source: Int, queues: inout [SplitQueue?], memory: GuestMemory) throws(QueueError) -> Bool {
        guard QueueIndex.receive < queues.count, var queue = queues[QueueIndex.receive] else { return false }
        let used = try receive(&queue, memory: memory)
        queues[QueueIndex.receive] = queue
        return used
    }

    // MARK: Receiving

    private var largestFrameBytes: Int {
        let segmented = negotiated & (NetFeature.guestTSO4 | NetFeature.guestTSO6) != 0
        return NetHeader.bytes + (segmented ? NetLimits.segmentedFrameBytes : NetLimits.frameBytes(mtu: tap.mtu))
    }

    private func receive(_ queue: inout SplitQueue, memory: GuestMemory) throws(QueueError) -> Bool {
        let mergeable = negotiated & NetFeature.mergeableRXBuffers != 0
        let needed = largestFrameBytes
        var used = false
        while true {
            // Buffers for the largest frame the tap may hand over first: a read cut short would
            // lose the rest of the frame. A ring too small to hold one is used whole.
            let mostChains = mergeable ? Int(queue.size) : 1
            while waitingBytes < needed, waiting.count < mostChains,
                  let chain = try queue.popChain(memory: memory) {
                var bytes = 0
                var writable = true
                for descriptor in chain.descriptors {
                    bytes += Int(descriptor.length)
                    writable = writable && descriptor.isDeviceWritable
                }
                guard writable, bytes >= NetHeader.bytes else {
                    counters.badReceiveChains += 1
                    try queue.pushUsed(head: chain.head, length: 0, memory: memory)
                    used = true
                    continue
                }
                let vectorsBefore = waitingVectors.count
                for descriptor in chain.descriptors where descriptor.length > 0 {
                    // The queue checked each buffer against guest RAM.
                    guard let buffer = try? memory.hostBuffer(at: descriptor.address, length: UInt64(descriptor.length)) else {
                        waitingVectors.removeSubrange(vectorsBefore...)
                        throw .bufferOutsideRAM(address: descriptor.address.value, length: descriptor.length)
                    }
                    waitingVectors.append(iovec(iov_base: buffer.baseAddress, iov_len: buffer.count))
                }
                waiting.append((chain, bytes, waitingVectors.count - vectorsBefore))
                waitingBytes += bytes
            }
            guard !waiting.isEmpty, waitingBytes >= needed || waiting.count >= mostChains else { return used }
            // Without mergeable buffers a frame goes into one chain.
            guard let result = tap.receive(into: waitingVectors, count: mergeable ? waitingVectors.count : waiting[0].vectorCount) else {
                return used
            }
            guard case let .success(length) = result, length >= NetHeader.bytes else {
                counters.receiveFailures += 1
                return used
            }
            // Which chains the frame filled: num_buffers before the used entries that publish them.
            var chains = 0
            var counted = 0
            while counted < length {
                counted += waiting[chains].bytes
                chains += 1
            }
            try store(UInt16(chains), atOffset: NetHeader.numBuffersOffset, of: waiting[0].chain, memory: memory)
            var remaining = length
            var vectors = 0
            for index in 0..<chains {
                let filled = min(waiting[index].bytes, remaining)
                try queue.pushUsed(head: waiting[index].chain.head, length: UInt32(filled), memory: memory)
                remaining -= filled
                waitingBytes -= waiting[index].bytes
                vectors += waiting[index].vectorCount
            }
            waiting.removeFirst(chains)
            waitingVectors.removeFirst(vectors)
            counters.receivedFrames += 1
            counters.receivedBytes += UInt64(length - NetHeader.bytes)
            used = true
        }
    }

    /// A little-endian 16-bit value at byte `offset` of a chain's buffers (it may straddle two).
    private func store(_ value: UInt16, atOffset offset: Int, of chain: DescriptorChain, memory: GuestMemory) throws(QueueError) {
        // Almost always inside the first buffer: one store.
        if let first = chain.descriptors.first, offset + 2 <= Int(first.length) {
            let address = GuestAddress(first.address.value + UInt64(offset))
            do { try memory.store(value, at: address) } catch { throw .bufferOutsideRAM(address: address.value, length: 2) }
            return
        }
        for (index, byte) in [UInt8(truncatingIfNeeded: value), UInt8(value >> 8)].enumerated() {
            guard let address = NetDevice.address(ofByte: offset + index, in: chain) else { return }
            do { try memory.store(byte, at: address) } catch { throw .bufferOutsideRAM(address: address.value, length: 1) }
        }
    }

    static func address(ofByte offset: Int, in chain: DescriptorChain) -> GuestAddress? {
        var skipped = 0
        for descriptor in chain.descriptors {
            if offset < skipped + Int(descriptor.length) { return GuestAddress(descriptor.address.value + UInt64(offset - skipped)) }
            skipped += Int(descriptor.length)
        }
        return nil
    }

    // MARK: Transmitting

    /// Everything the driver queued, without its notifications while the queue drains (as QEMU's
    /// transmit does: a guest sending a burst would exit once per frame otherwise).
    private func transmit(_ queue: inout SplitQueue, memory: GuestMemory) throws(QueueError) -> Bool {
        var used = false
        queue.setNotifications(enabled: false, memory: memory)
        defer { queue.setNotifications(enabled: true, memory: memory) }
        while true {
            while let chain = try queue.popChain(memory: memory) {
                send(chain, memory: memory)
                try queue.pushUsed(head: chain.head, length: 0, memory: memory)
                used = true
            }
            // Notifications on again, then one more look: what came meanwhile sent none.
            queue.setNotifications(enabled: true, memory: memory)
            guard let chain = try queue.popChain(memory: memory) else { return used }
            queue.setNotifications(enabled: false, memory: memory)
            send(chain, memory: memory)
            try queue.pushUsed(head: chain.head, length: 0, memory: memory)
            used = true
        }
    }

    /// One frame to the tap, its header copied out and checked first; a bad one is dropped.
    private func send(_ chain: DescriptorChain, memory: GuestMemory) {
        var bytes = 0
        var readable = true
        for descriptor in chain.descriptors {
            bytes += Int(descriptor.length)
            readable = readable && !descriptor.isDeviceWritable
        }
        guard readable, bytes >= NetHeader.bytes + NetLimits.shortestFrameBytes, bytes <= NetLimits.largestTransmitBytes else {
            counters.malformedFrames += 1
            return
        }
        transmitHeader.removeAll(keepingCapacity: true)
        transmitVectors.removeAll(keepingCapacity: true)
        // The first vector is the checked header, set below.
        transmitVectors.append(iovec())
        for descriptor in chain.descriptors where descriptor.length > 0 {
            guard let buffer = try? memory.hostBuffer(at: descriptor.address, length: UInt64(descriptor.length)),
                  let base = buffer.baseAddress else {
                counters.malformedFrames += 1
                return
            }
            let headerPart = min(NetHeader.bytes - transmitHeader.count, buffer.count)
            if headerPart > 0 { transmitHeader.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[..<headerPart])) }
            if headerPart < buffer.count { transmitVectors.append(iovec(iov_base: base + headerPart, iov_len: buffer.count - headerPart)) }
        }
        guard let header = NetHeader(transmitHeader).sanitized(features: negotiated) else {
            counters.malformedFrames += 1
            return
        }
        header.encode(into: &transmitHeader)
        let sent = transmitHeader.withUnsafeMutableBytes { encoded in
            transmitVectors[0] = iovec(iov_base: encoded.baseAddress, iov_len: encoded.count)
            return tap.send(transmitVectors)
        }
        if sent {
            counters.sentFrames += 1
            counters.sentBytes += UInt64(bytes - NetHeader.bytes)
        } else {
            counters.sendFailures += 1
        }
    }
}
