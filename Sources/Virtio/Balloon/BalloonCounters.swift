/// What the balloon has done so far: read by the CLI's summary, the tests and the benchmarks.
public struct BalloonCounters: Sendable, Equatable {
    /// Free page reporting: ranges the guest reported, their bytes, bytes given back to the host.
    public var reportedRanges: UInt64 = 0
    public var reportedBytes: UInt64 = 0
    public var discardedBytes: UInt64 = 0
    /// Bytes discarded because the guest put them in the balloon (inflate).
    public var inflateDiscardedBytes: UInt64 = 0
    /// Of the bytes free page reporting discarded, those that were resident on the host until
    /// then: what reporting really gave back (a page reported twice counts once).
    public var reportReturnedBytes: UInt64 = 0
    /// `madvise` calls made for reports: contiguous reported blocks share one.
    public var reportDiscardCalls: UInt64 = 0
    /// Discards `madvise` refused (counted, never fatal).
    public var discardFailures: UInt64 = 0
    /// Reported ranges not aligned to host pages (only their whole pages were discarded).
    public var unalignedRanges: UInt64 = 0
    /// When the first report arrived (monotonic clock), for time-to-reclaim figures.
    public var firstReportAt: ContinuousClock.Instant?
    /// `madvise` calls made for inflations: the runs of consecutive frames in each PFN array.
    public var inflateDiscardCalls: UInt64 = 0
    /// Inflate and deflate, in 4 KiB pages; PFNs outside guest RAM are skipped and counted.
    public var inflatedPages: UInt64 = 0
    public var deflatedPages: UInt64 = 0
    public var invalidPFNs: UInt64 = 0
    /// Guest statistics: the latest value of each tag and how many updates arrived.
    public var guestStatistics: [UInt16: UInt64] = [:]
    public var statisticsUpdates: UInt64 = 0
    /// Statistics buffers handed back to the driver (each asks it for fresh figures), and which of
    /// those requests the latest update answered (0: none, as the driver's first buffer): figures
    /// made after a moment are those answering a request made after it.
    public var statisticsRequests: UInt64 = 0
    public var answeredStatisticsRequest: UInt64 = 0

    public init() {}
}
