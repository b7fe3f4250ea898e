import Virtio

/// What the reclaim policy sees of the guest at one moment, all of it from outside the guest:
/// the balloon driver's statistics, KVM's vCPU statistics, the devices' counters and the host's
/// view of guest RAM.
public struct ReclaimObservation: Sendable, Equatable {
    /// Time since the policy began (its clock; tests simulate it).
    public var elapsed: Duration
    /// The guest's latest balloon statistics, and how many updates have arrived in all.
    public var statistics: GuestMemoryStatistics?
    public var statisticsUpdates: UInt64
    /// Statistics requests made so far, and the one the latest update answered (0: unknown, as
    /// with a simulated guest; see `BalloonCounters`).
    public var statisticsRequests: UInt64 = 0
    public var answeredStatisticsRequest: UInt64 = 0
    /// All vCPUs' time halted so far (KVM's `halt_wait_ns`, summed), and how many there are; nil
    /// where KVM has no binary statistics (the guest then always counts as busy).
    public var haltedNanoseconds: UInt64?
    public var vcpuCount: Int
    /// Requests the other devices (disks) have served so far.
    public var deviceRequests: UInt64
    /// Bytes the guest's NICs have moved so far, both ways.
    public var networkBytes: UInt64
    /// Guest RAM resident on the host; sampled only when the policy wants it (`wantsCostlySample`).
    public var residentBytes: UInt64?
    /// The balloon's `actual` as the driver last wrote it.
    public var balloonActualBytes: UInt64
    /// Bytes the driver has deflated so far: during a squeeze, only deflate-on-OOM deflates.
    public var deflatedBytes: UInt64

    public init(elapsed: Duration, statistics: GuestMemoryStatistics?, statisticsUpdates: UInt64,
                haltedNanoseconds: UInt64?, vcpuCount: Int, deviceRequests: UInt64 = 0, networkBytes: UInt64 = 0,
                residentBytes: UInt64?, balloonActualBytes: UInt64, deflatedBytes: UInt64 = 0) {
        self.elapsed = elapsed
        self.statistics = statistics
        self.statisticsUpdates = statisticsUpdates
        self.haltedNanoseconds = haltedNanoseconds
        self.vcpuCount = vcpuCount
        self.deviceRequests = deviceRequests
        self.networkBytes = networkBytes
        self.residentBytes = residentBytes
        self.balloonActualBytes = balloonActualBytes
        self.deflatedBytes = deflatedBytes
    }
}

/// The balloon statistics the policy reads, in bytes or events.
public struct GuestMemoryStatistics: Sendable, Equatable {
    public var freeBytes: UInt64
    public var availableBytes: UInt64
    /// Linux's NR_FILE_PAGES: page cache, tmpfs and shmem included (which no reclaim can drop:
    /// the policy takes the least cache it has seen as that part).
    public var cacheBytes: UInt64
    public var totalBytes: UInt64
    public var majorFaults: UInt64
    public var swapOutBytes: UInt64
    /// OOM kills, on Linux 6.12 and later only.
    public var oomKills: UInt64?

    public init(freeBytes: UInt64, availableBytes: UInt64, cacheBytes: UInt64, totalBytes: UInt64,
                majorFaults: UInt64 = 0, swapOutBytes: UInt64 = 0, oomKills: UInt64? = nil) {
        self.freeBytes = freeBytes
        self.availableBytes = availableBytes
        self.cacheBytes = cacheBytes
        self.totalBytes = totalBytes
        self.majorFaults = majorFaults
        self.swapOutBytes = swapOutBytes
        self.oomKills = oomKills
    }

    /// From the driver's tags; nil unless it sent free, available, cache and total memory.
    public init?(tags: [UInt16: UInt64]) {
        func tag(_ name: BalloonStatTag) -> UInt64? { tags[name.rawValue] }
        guard let free = tag(.freeMemory), let available = tag(.availableMemory), let cache = tag(.diskCaches),
              let total = tag(.totalMemory) else { return nil }
        self.init(freeBytes: free, availableBytes: available, cacheBytes: cache, totalBytes: total,
                  majorFaults: tag(.majorFaults) ?? 0, swapOutBytes: tag(.swapOut) ?? 0, oomKills: tag(.oomKills))
    }

}
