import ByteOrder
import Devices
import GuestMemory
import Seccomp

/// virtio-balloon (device id 5) with free page reporting: pages the guest reports free or puts in
/// the balloon are discarded on the host (`madvise(MADV_DONTNEED)`), so the host's resident memory
/// falls; deflated pages simply fault back in when the guest touches them.
///
/// Called only by `VirtioMMIOTransport`, which owns it, under its lock (see `VirtioDevice`).
public final class BalloonDevice: VirtioDevice {
    public struct Options: Sendable, Equatable {
        public var freePageReporting = true
        public var deflateOnOOM = true
        /// How often Ebb asks the guest for statistics; nil: never (the guest's buffer is kept).
        public var statisticsInterval: Duration?
        public var targetBytes: UInt64 = 0

        public init(freePageReporting: Bool = true, deflateOnOOM: Bool = true, statisticsInterval: Duration? = nil, targetBytes: UInt64 = 0) {
            self.freePageReporting = freePageReporting
            self.deflateOnOOM = deflateOnOOM
            self.statisticsInterval = statisticsInterval
            self.targetBytes = targetBytes
        }
    }

    public static let id: UInt32 = 5
    static let configBytes = 16

    public let options: Options
    public let offeredFeatures: UInt64
    public var name: String { "virtio-balloon" }
    public var deviceID: UInt32 { Self.id }
    public func maximumQueueSize(queue index: Int) -> UInt16 { BalloonLimits.queueSize }
    /// Inflations and deflations on the vCPU: Linux's driver sends 256 pages and waits for them
    /// (a squeeze is thousands of these in a row), and serving one is a sort and a few
    /// `madvise` calls. Reports stay on the device's thread: each discards up to 64 MiB, and Linux
    /// sends them from a workqueue while the guest's tasks run.
    public func servesOnVCPU(queue index: Int) -> Bool {
        // Inflate and deflate are always queues 0 and 1, whatever else was negotiated.
        let roles = BalloonQueue.roles(features: 0)
        return index < roles.count && (roles[index] == .inflate || roles[index] == .deflate)
    }
    /// The statistics interval: each tick hands the held statistics buffer back, which asks the
    /// driver for fresh figures. No statistics, no timer.
    public var tickInterval: Duration? { options.statisticsInterval }

    /// Config space: num_pages is Ebb's target, actual is the driver's answer.
    public private(set) var targetPages: UInt32
    public private(set) var actualPages: UInt32 = 0
    public private(set) var counters = BalloonCounters()
    private var roles: [BalloonQueue]
    /// The statistics buffer the driver gave last, kept until Ebb wants the next update.
    private var heldStatistics: UInt16?
    /// The request the buffer now with the driver answers (see `BalloonCounters`).
    private var outstandingStatisticsRequest: UInt64 = 0
    private var negotiated: UInt64 = 0
    /// Inflated pages waiting for the rest of their huge page (see `InflatedBlocks`).
    private var waitingInflations = InflatedBlocks()

    public init(options: Options) {
        self.options = options
        // MUST_TELL_HOST: Linux's driver acknowledges it and behaves as it always does (no page
        // reused before its deflation was answered); Ebb relies on it to hold inflated pages.
        var features = VirtioFeature.version1 | BalloonFeature.statsQueue | BalloonFeature.mustTellHost
        if options.deflateOnOOM { features |= BalloonFeature.deflateOnOOM }
        if options.freePageReporting { features |= BalloonFeature.reporting }
        offeredFeatures = features
        targetPages = UInt32(clamping: options.targetBytes / BalloonLimits.pageBytes)
        roles = BalloonQueue.roles(features: features)
    }

    /// A new target; call through `VirtioMMIOTransport.configChanged` so the driver hears of it.
    public func setTarget(bytes: UInt64) {
        targetPages = UInt32(clamping: bytes / BalloonLimits.pageBytes)
    }

    public func queueCount(features: UInt64) -> Int { BalloonQueue.roles(features: features).count }

    public func activate(features: UInt64) {
        roles = BalloonQueue.roles(features: features)
        heldStatistics = nil
        outstandingStatisticsRequest = 0
        negotiated = features
    }

    /// The pages still waiting stay resident: a driver that resets its device without deflating
    /// takes the balloon's pages back unannounced, and they may be in use already.
    public func reset() {
        roles = BalloonQueue.roles(features: offeredFeatures)
        heldStatistics = nil
        actualPages = 0
        outstandingStatisticsRequest = 0
        negotiated = 0
        waitingInflations.forget()
    }

    /// Inflated pages wait for their huge page's other pages only with huge pages (nothing to
    /// gain without), a driver that tells before it reuses, and the statistics timer, whose
    /// tick discards what stopped growing.
    private func holdsInflations(memory: GuestMemory) -> Bool {
        memory.hugePages && negotiated & BalloonFeature.mustTellHost != 0 && options.statisticsInterval != nil
    }

    /// Discards are `madvise(MADV_DONTNEED)`, which every thread may call; `mincore` counts what
    /// a discard gave back (pages that were resident).
    public var hostSystemCalls: [SyscallRule] { [SyscallRule("mincore")] }

    public func readConfig(offset: UInt64, count: Int) -> [UInt8] {
        var config = [UInt8](repeating: 0, count: Self.configBytes)
        config.withUnsafeMutableBytes { bytes in
            UnsafeMutableRawBufferPointer(rebasing: bytes[0..<4]).storeLittleEndian(UInt64(targetPages))
            UnsafeMutableRawBufferPointer(rebasing: bytes[4..<8]).storeLittleEndian(UInt64(actualPages))
        }
        return (0..<count).map { index in
            let (position, overflow) = offset.addingReportingOverflow(UInt64(index))
            return !overflow && position < UInt64(config.count) ? config[Int(position)] : 0
        }
    }

    public func writeConfig(offset: UInt64, bytes: [UInt8], memory: GuestMemory) {
        // Only `actual` (offset 4) is the driver's to write.
        guard offset == 4, bytes.count == 4 else { return }
        actualPages = UInt32(littleEndianValue(bytes[0..<4]))
        // The driver writes `actual` after each request; at the target no more pages come, and
        // what waits for its block's other pages would wait for the statistics tick (1-2 s of
        // guest RAM's resident size not yet fallen, up to 64 MiB of it).
        if actualPages >= targetPages { discardWaitingInflations(memory: memory) }
    }

    public func process(queueIndex: Int, queue: inout SplitQueue, memory: GuestMemory) throws(QueueError) -> Bool {
        guard queueIndex < roles.count else { return false }
        var used = false
        while let chain = try queue.popChain(memory: memory) {
            switch roles[queueIndex] {
            case .inflate:
                let frames = try pageFrames(in: chain, memory: memory)
                counters.inflatedPages += UInt64(frames.count)
                if holdsInflations(memory: memory) {
                    discardInflatedRuns(memory: memory) { discard in
                        for frame in frames { waitingInflations.add(frame: frame, discard: discard) }
                    }
                } else {
                    discardInflated(frames: frames, memory: memory)
                }
            case .deflate:
                // Whatever waits goes first: the driver may use these pages once answered.
                discardWaitingInflations(memory: memory)
                counters.deflatedPages += UInt64(try pageFrames(in: chain, memory: memory).count)
            case .stats:
                try readStatistics(chain, memory: memory)
                counters.answeredStatisticsRequest = outstandingStatisticsRequest
                outstandingStatisticsRequest = 0
                // Keep the buffer: returning it is how Ebb asks for the next update.
                if let held = heldStatistics { try queue.pushUsed(head: held, length: 0, memory: memory); used = true }
                heldStatistics = chain.head
                continue
            case .reporting:
                report(chain, memory: memory)
            }
            try queue.pushUsed(head: chain.head, length: 0, memory: memory)
            used = true
        }
        return used
    }

    public func tick(queues: inout [SplitQueue?], memory: GuestMemory) throws(QueueError) -> Bool {
        discardInflatedRuns(memory: memory) { waitingInflations.takeStale(discard: $0) }
        guard let held = heldStatistics,
              let index = roles.firstIndex(of: .stats), index < queues.count, var queue = queues[index] else { return false }
        try queue.pushUsed(head: held, length: 0, memory: memory)
        queues[index] = queue
        heldStatistics = nil
        counters.statisticsRequests += 1
        outstandingStatisticsRequest = counters.statisticsRequests
        return true
    }

    // MARK: Requests

    /// Each reported buffer is one free block of guest-physical memory: give its pages back.
    /// Blocks that follow each other in guest memory (as a guest freeing a large region reports
    /// them) share one discard (see `ContiguousRuns`).
    private func report(_ chain: DescriptorChain, memory: GuestMemory) {
        if counters.firstReportAt == nil { counters.firstReportAt = ContinuousClock.now }
        var runs = ContiguousRuns()
        for descriptor in chain.descriptors where descriptor.length > 0 {
            // The queue already checked that the range lies in guest RAM.
            guard let range = GuestRange(start: descriptor.address, length: UInt64(descriptor.length)) else { continue }
            counters.reportedRanges += 1
            counters.reportedBytes += range.length
            if range.start.value % memory.pageSizeBytes != 0 || range.length % memory.pageSizeBytes != 0 {
                counters.unalignedRanges += 1
            }
            if let finished = runs.add(range, memory: memory) { discardReported(finished, memory: memory) }
        }
        if let last = runs.pending { discardReported(last, memory: memory) }
    }

    private func discardReported(_ range: GuestRange, memory: GuestMemory) {
        counters.reportDiscardCalls += 1
        // What a report gave back is the pages still resident before the discard (a page
        // reported twice counts once). Not measured for inflations, which are on the squeeze's
        // hot path: the reclaim policy measures a squeeze by guest RAM's resident size instead.
        counters.reportReturnedBytes += memory.residentBytes(in: range)
        counters.discardedBytes += discard(range, memory: memory)
    }

    /// Inflated page frames (each a checked page of RAM), one `madvise` per run of consecutive
    /// ones: each call makes KVM invalidate the guest's mappings, whatever its length.
    private func discardInflated(frames: [UInt64], memory: GuestMemory) {
        discardInflatedRuns(memory: memory) { discard in
            for frame in frames { discard(frame, 1) }
        }
    }

    private func discardInflated(_ run: GuestRange, memory: GuestMemory) {
        counters.inflateDiscardCalls += 1
        counters.inflateDiscardedBytes += discard(run, memory: memory)
    }

    /// Bytes discarded. A failed discard is counted, never fatal: the memory simply stays resident.
    private func discard(_ range: GuestRange, memory: GuestMemory) -> UInt64 {
        do {
            return try memory.discard(range)
        } catch {
            counters.discardFailures += 1
            return 0
        }
    }

    private func discardWaitingInflations(memory: GuestMemory) {
        discardInflatedRuns(memory: memory) { waitingInflations.takeAll(discard: $0) }
    }

    /// The runs of inflated frames `take` hands over (first frame, count: checked pages of RAM),
    /// joined where one follows another, one `madvise` per joined run. A run that does not lie in
    /// one RAM region (two regions that meet) goes page by page.
    private func discardInflatedRuns(memory: GuestMemory, _ take: (_ discard: (_ firstFrame: UInt64, _ frames: Int) -> Void) -> Void) {
        var runs = ContiguousRuns()
        take { firstFrame, frames in
            guard let run = GuestRange(start: GuestAddress(firstFrame << 12), length: UInt64(frames) * BalloonLimits.pageBytes) else { return }
            if memory.region(containing: run) != nil {
                if let finished = runs.add(run, memory: memory) { discardInflated(finished, memory: memory) }
                return
            }
            for frame in firstFrame..<firstFrame + UInt64(frames) {
                guard let page = GuestRange(start: GuestAddress(frame << 12), length: BalloonLimits.pageBytes) else { continue }
                if let finished = runs.add(page, memory: memory) { discardInflated(finished, memory: memory) }
            }
        }
        if let last = runs.pending { discardInflated(last, memory: memory) }
    }

    /// The page frames of an inflate/deflate chain's PFN arrays, ascending whatever order the
    /// driver gave them in (Linux fills each array from a list it pushes its allocations onto, so
    /// pages allocated one after another arrive in descending order), each once. Frames outside
    /// RAM are counted, skipped.
    private func pageFrames(in chain: DescriptorChain, memory: GuestMemory) throws(QueueError) -> [UInt64] {
        var frames: [UInt64] = []
        var bytesSeen = 0
        for descriptor in chain.descriptors {
            guard !descriptor.isDeviceWritable else { throw .wrongDirection("balloon PFN buffer is device-writable") }
            bytesSeen += Int(descriptor.length)
            guard bytesSeen <= BalloonLimits.maximumPFNArrayBytes else { throw .malformedRequest("PFN array of \(bytesSeen) bytes") }
            let bytes: [UInt8]
            do { bytes = try memory.read(at: descriptor.address, count: Int(descriptor.length) & ~3) } catch {
                throw .bufferOutsideRAM(address: descriptor.address.value, length: descriptor.length)
            }
            for offset in stride(from: 0, to: bytes.count, by: 4) {
                let pfn = littleEndianValue(bytes[offset..<offset + 4])
                guard let page = GuestRange(start: GuestAddress(pfn << 12), length: BalloonLimits.pageBytes),
                      memory.region(containing: page) != nil else {
                    counters.invalidPFNs += 1
                    continue
                }
                frames.append(pfn)
            }
        }
        frames.sort()
        var previous: UInt64?
        return frames.filter { pfn in
            defer { previous = pfn }
            return pfn != previous
        }
    }

    private func readStatistics(_ chain: DescriptorChain, memory: GuestMemory) throws(QueueError) {
        var bytes: [UInt8] = []
        for descriptor in chain.descriptors {
            guard !descriptor.isDeviceWritable else { throw .wrongDirection("balloon stats buffer is device-writable") }
            guard bytes.count + Int(descriptor.length) <= BalloonLimits.maximumStatsBytes else {
                throw .malformedRequest("stats buffer larger than \(BalloonLimits.maximumStatsBytes) bytes")
            }
            do { bytes += try memory.read(at: descriptor.address, count: Int(descriptor.length)) } catch {
                throw .bufferOutsideRAM(address: descriptor.address.value, length: descriptor.length)
            }
        }
        // Packed entries: le16 tag, le64 value.
        for offset in stride(from: 0, to: bytes.count - bytes.count % 10, by: 10) {
            let tag = UInt16(littleEndianValue(bytes[offset..<offset + 2]))
            counters.guestStatistics[tag] = littleEndianValue(bytes[offset + 2..<offset + 10])
        }
        counters.statisticsUpdates += 1
    }
}


/// Joins ranges that follow each other in guest memory, within one RAM region, so that each run
/// costs one `madvise`: each call makes KVM invalidate the guest's mappings and flush every
/// vCPU's TLB, whatever its length.
struct ContiguousRuns {
    /// The run being extended; the caller finishes it after the last `add`.
    private(set) var pending: GuestRange?

    /// Extends the pending run with `range`, or starts a new one and returns the run it ended.
    mutating func add(_ range: GuestRange, memory: GuestMemory) -> GuestRange? {
        if let current = pending, current.end == range.start.value,
           let longer = GuestRange(start: current.start, length: current.length + range.length),
           memory.region(containing: longer) != nil {
            pending = longer
            return nil
        }
        defer { pending = range }
        return pending
    }
}
