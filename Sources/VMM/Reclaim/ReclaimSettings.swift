/// How Ebb's agentless reclaim squeezes a guest (see `ReclaimPolicy`). The defaults are what the
/// README's figures were measured with.
public struct ReclaimSettings: Sendable, Equatable {
    /// How often the policy looks at the guest and may start a squeeze (WSL's agent: 10 s).
    public var interval: Duration = .seconds(5)
    /// Cache a squeeze leaves the guest. WSL keeps 128 MiB; Ebb starts low, since it is the
    /// guest's own LRU that picks what goes (cold cache first, the hot stays), and raises the
    /// floor whenever the guest refetches what it gave up.
    public var cacheFloorBytes: UInt64 = 4 << 20
    /// While the guest runs (not idle) and shows no pressure: at most this much cache per squeeze
    /// (WSL's gradual mode: 256 MiB per 10 s).
    public var busyStepBytes: UInt64 = 256 << 20
    /// While the guest runs, a squeeze also leaves it this share of its RAM in cache above the
    /// floor: what its running programs allocate in the middle of the squeeze comes out of that
    /// cold cache, not out of nothing. Without it, a busy 1 GiB guest on the emulated host was
    /// squeezed down to 3 MiB of cache and no MemAvailable at all, re-read its programs (2000
    /// major faults) and, one run in seven, its driver deflated on OOM. Only for a guest whose
    /// vCPUs ran at least `marginBusyShare` of the interval.
    public var busyCacheMarginShare = 1.0 / 32
    /// A guest this busy keeps `busyCacheMarginShare`; one busy but less (an idle guest's shell
    /// loop printing its meminfo looked 3% busy on the emulated host) gives up its cache as an idle
    /// one does, in one squeeze: kept a margin, its last 10% of the fall came half a minute late.
    public var marginBusyShare = 0.5
    /// The guest is idle when its vCPUs ran (were not halted) at most this share of the interval
    /// and no other device served a request.
    public var idleBusyShare = 0.02
    /// A guest whose NICs move more than this per second is using its memory for the traffic:
    /// no squeeze until it stops (as for a guest reading its disk). Less is background chatter
    /// (ARP, keepalives), which must not keep a guest from being squeezed for ever.
    public var transferBytesPerSecond: UInt64 = 1 << 20
    /// A guest that keeps its vCPUs busy after a transfer is most likely between two (a client
    /// preparing its next request, a checksum of what arrived): no squeeze for this long after
    /// the last one, unless it goes idle. On the emulated host a free-pages squeeze in the second
    /// before an upload (busybox wget reading the file it posts) doubled the upload's time.
    public var quietAfterTransfer: Duration = .seconds(10)
    /// A squeeze that would give back less than this, or than a sixteenth of the guest's free
    /// memory, is not worth the guest's pass over it.
    public var minimumGainBytes: UInt64 = 16 << 20
    /// Resident free memory worth a squeeze of its own (which asks for only twice that, plus
    /// `perCPUFreeListShare`).
    public var minimumFreeGainBytes: UInt64 = 8 << 20
    /// Free memory Linux keeps on its per-CPU free lists, which MemFree leaves out (so Ebb takes it
    /// for memory in use), up to this share of guest RAM: the emulated host's 1 GiB guest held
    /// 20-37 MiB there after a squeeze's deflation, its lists' `high` 55 MiB. The balloon
    /// empties these lists before it reaches the guest's small free blocks, so a free-pages
    /// squeeze asks for this much on top of what it came for, and one follows every cache
    /// squeeze (whose last reclaimed pages stay resident, free, where the balloon did not take them).
    public var perCPUFreeListShare = 1.0 / 16
    /// A squeeze whose `actual` has not moved for this long has stalled: it ends there.
    public var stallTimeout: Duration = .seconds(3)
    /// The longest a squeeze may take, progress or not. Long: a squeeze that still progresses is
    /// worth finishing (a busy guest on the emulated host fed its balloon at ~20 MiB/s, and 30 s
    /// cut it off before it reached the cache; on CI's slower emulated host a busy guest fed it at
    /// ~4 MiB/s, and 120 s ended two squeezes of three there); one that stops is caught by
    /// `stallTimeout`.
    public var squeezeTimeout: Duration = .seconds(240)
    /// Major faults in the intervals after a squeeze that mean the guest is refetching what it
    /// gave up (64 faults: 256 KiB read back).
    public var refetchMajorFaults: UInt64 = 64
    /// How many intervals after a squeeze its refetch is watched for.
    public var refetchWatchIntervals = 3
    /// Intervals to wait after a refetch, a swap-out or a stall.
    public var backOffIntervals = 6
    /// After an OOM kill or a deflate-on-OOM, no squeeze for this long.
    public var outOfMemoryPause: Duration = .seconds(600)
    /// The floor never rises above this share of guest RAM.
    public var maximumFloorShare = 0.25

    public init() {}

    public init(interval: Duration, cacheFloorBytes: UInt64, minimumGainBytes: UInt64 = 16 << 20) {
        self.interval = interval
        self.cacheFloorBytes = cacheFloorBytes
        self.minimumGainBytes = minimumGainBytes
    }
}
