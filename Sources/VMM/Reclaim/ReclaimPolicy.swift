import GuestMemory

/// Agentless reclaim: when the guest holds page cache above a floor, or free memory the host
/// still has resident, Ebb squeezes it with the balloon and lets go at once. Inflating makes the
/// guest's own reclaim give up its coldest cache (its LRU chooses, not Ebb); every page the
/// balloon takes is discarded on the host, 4 KiB at a time, so scattered free pages that free
/// page reporting never sees come back too; deflating hands the guest all its memory again, as
/// free pages the host no longer backs.
///
/// A pure state machine: `step` takes what is seen from outside the guest (`ReclaimObservation`)
/// and answers a new balloon target when it wants one. The caller applies it (`IdleReclaimer`);
/// the unit tests drive it with a simulated guest.
///
/// - While the guest is busy but shows no pressure, a squeeze takes at most `busyStepBytes` of
///   cache and, if it runs flat out (`marginBusyShare`), leaves it `busyCacheMarginShare` of its
///   RAM above the floor; once it is idle, all the cache above the floor.
/// - Safeguards: major faults after a squeeze (the guest reading back what it gave up) or any
///   swap-out back off for `backOffIntervals` and, for a refetch, raise the floor (while backed
///   off for a refetch only, a squeeze for free pages alone, which takes no cache, still runs); an OOM kill
///   (Linux 6.12+) or the driver deflating on OOM during a squeeze stops squeezing for
///   `outOfMemoryPause` (a device reset, which drops the balloon without a deflation, only ends
///   the squeeze); a squeeze whose `actual` stops moving ends where it got to, and the
///   cache the guest kept through it counts as tmpfs from then on.
/// - No squeeze while the guest reads its disks or moves data on its NICs: it is using that memory.
/// - A target the user set wins: no squeeze while it is non-zero, and setting one ends a squeeze.
public struct ReclaimPolicy: Sendable {
    public enum State: String, Sendable {
        case starting, idle, busy, squeezing, releasing
        case backedOff = "backed-off", stopped
        case userTarget = "user-target"
    }

    /// Why a squeeze ended before the balloon reached its target.
    public enum Abort: String, Sendable, CaseIterable {
        case stalled
        case timedOut = "timed-out"
        case outOfMemory = "out-of-memory"
        case userTarget = "user-target"
        case driverReset = "driver-reset"
    }

    /// Why the policy waited instead of squeezing.
    public enum BackOff: String, Sendable, CaseIterable {
        case refetch, swap, stall
        case outOfMemory = "out-of-memory"
        /// A free-pages squeeze gave back less than it is worth: the resident memory it saw is
        /// not free pages the balloon can take (e.g. the guest's per-CPU free lists).
        case noGain = "no-gain"
    }

    public let settings: ReclaimSettings
    public let guestRAMBytes: UInt64
    public private(set) var state = State.starting
    public private(set) var counters = ReclaimCounters()
    /// The cache floor now: the settings' floor, raised by each refetch.
    public private(set) var floorBytes: UInt64
    public private(set) var userTargetBytes: UInt64

    private struct Baseline {
        /// When the next decision is due from: moved earlier to look again soon.
        var elapsed: Duration
        /// When these figures were seen, which rates are measured from.
        var observedAt: Duration
        var updates: UInt64
        var halted: UInt64?
        var deviceRequests: UInt64
        var networkBytes: UInt64
        var statistics: GuestMemoryStatistics?
    }

    private struct Squeeze {
        var target: UInt64
        var startedAt: Duration
        var lastActual: UInt64
        var progressAt: Duration
        var residentAtStart: UInt64?
        var deflatedAtStart: UInt64
        /// The reclaimable cache the squeeze leaves, and the statistics update it started at.
        var keepCacheBytes: UInt64?
        var updatesAtStart: UInt64
        /// Cache this squeeze may still take (a busy guest's step), and the reclaimable cache
        /// the last stage started from.
        var cacheBudgetBytes: UInt64
        var reclaimableAtStage: UInt64
        /// The statistics update seen when `actual` reached the stage's target, and the last
        /// statistics request made by then.
        var reachedAtUpdates: UInt64?
        var reachedAtRequest: UInt64 = 0
        var stages = 1
        /// A free-pages squeeze: the resident free memory it came for. It ends once guest RAM's
        /// resident size has fallen by about that, rather than inflating on through free memory
        /// the host no longer backs (the balloon gets the resident fragments first: the guest's
        /// allocator hands out its per-CPU lists and its smallest free blocks before it splits
        /// the large, reported ones).
        var residentGoalBytes: UInt64?
        /// The free-pages squeeze that follows a cache squeeze: made once, whatever it gains, so
        /// a small gain is no reason to back off (that is for squeezes that would repeat).
        var followsCacheSqueeze = false
        /// Where `actual` must have got to before the resident goal can end the squeeze: past the
        /// guest's per-CPU free lists, behind which the one after a cache squeeze finds what it
        /// came for (the guest's figures do not show it).
        var goalCountsFrom: UInt64 = 0
        /// The guest's major faults when the squeeze began.
        var majorFaultsAtStart: UInt64 = 0
    }

    /// After a release, the next decision comes this soon (given fresh figures by then).
    static let settleAfterRelease: Duration = .seconds(1)
    /// While the guest reads its disks, whether it has stopped is asked this often. Not less: on
    /// the emulated host a guest reading one file without a pause left its disk quiet for more
    /// than half a second at times, and a squeeze in the middle of its reads (the bench's one run
    /// of five at 0.5 s) came back for the cache only half a minute later.
    static let recheckAfterReading: Duration = .seconds(1)
    /// A squeeze goes in stages, each sized from fresh figures; this many at most.
    static let maximumStages = 4
    /// A stage that would take less cache than this ends the squeeze.
    static let smallestStageBytes: UInt64 = 4 << 20

    private var lastDecision: Baseline?
    private var squeeze: Squeeze?
    /// The policy wants the guest's figures now, not at the statistics timer's next tick.
    private var statisticsWanted = false
    /// When the release last made progress, and the `actual` it had got to.
    private var releaseProgressAt = Duration.zero
    private var releaseLastActual = UInt64.max
    private var pausedUntil: Duration?
    /// What the state is while paused: backed off, or stopped after an OOM.
    private var pausedState = State.backedOff
    /// What a pause for one reason alone still lets run: after a refetch the guest wants its
    /// cache, and a squeeze that takes none (free pages the host still backs) may still run;
    /// after a free-pages squeeze that gained nothing, a squeeze for cache may (the free pages it
    /// could not reach say nothing of cache read since: paused whole, a guest that read 260 MiB
    /// just after such a squeeze kept it for the whole back-off, 30 s).
    private enum PauseScope { case nothing, freePagesOnly, cacheOnly }
    private var pauseAllows = PauseScope.nothing
    /// What the last decision saw the guest doing: idle or busy.
    private var activity = State.starting
    /// The vCPUs' busy share over the last interval.
    public private(set) var lastBusyShare: Double?
    /// When a decision last saw the NICs moving data (`transferBytesPerSecond`).
    private var lastTransferAt: Duration?
    /// The least cache the guest has reported: tmpfs, shmem and the like, which reclaim cannot
    /// drop (Linux counts them in NR_FILE_PAGES); the rest is taken as reclaimable.
    public private(set) var persistentCacheBytes: UInt64?
    /// MemAvailable less MemFree when the cache was last at `persistentCacheBytes`. MemAvailable
    /// counts the file LRU's pages, less at most half of them, and never tmpfs: twice its growth
    /// since then bounds the cache reclaim can drop, so tmpfs written after boot is not taken
    /// for cache (on the emulated host a squeeze for a guest's `/tmp` cost a network transfer
    /// half its speed).
    private var availableOverFreeAtFloor: Int64?
    /// Free memory the guest will not give the balloon before it reclaims (its watermark
    /// reserves): the most MemFree plus reclaimable cache has exceeded MemAvailable.
    public private(set) var reserveEstimateBytes: UInt64 = 0
    /// Guest RAM resident when the squeeze being released began.
    private var releasedFrom: UInt64?
    /// The guest's major faults when the squeeze being released began.
    private var releasedFaultsFrom: UInt64 = 0
    /// Whether the squeeze being released came for free pages (not cache), and may repeat.
    private var releasingFreePages = false
    /// A cache squeeze ended since the last squeeze began: a free-pages squeeze is due for what
    /// it left resident, however little of it the guest's figures show.
    private var freePagesFollowUpDue = false
    /// A squeeze while the guest was busy left it cache above the floor (`busyCacheMarginShare`,
    /// or beyond `busyStepBytes`): once it is idle, that comes back whatever its size. Held to the
    /// sixteenth-of-free-memory rule, a guest that still looked busy the second after reading its
    /// disk kept 26 MiB of cold cache for good (the emulated host's 1 GiB guest).
    private var busyLeftCache = false
    /// After a squeeze: the guest's major faults then, and until when a rise counts as refetch.
    private var refetchWatch: (majorFaults: UInt64, until: Duration)?

    public init(settings: ReclaimSettings, guestRAMBytes: UInt64, userTargetBytes: UInt64 = 0) {
        self.settings = settings
        self.guestRAMBytes = guestRAMBytes
        self.floorBytes = settings.cacheFloorBytes
        self.userTargetBytes = userTargetBytes
        if userTargetBytes > 0 { state = .userTarget }
    }

    /// Whether the last `step` asked for the guest's statistics at once; asking clears it.
    public mutating func takeStatisticsRequest() -> Bool {
        defer { statisticsWanted = false }
        return statisticsWanted
    }

    /// Whether the next `step` at `elapsed` wants the costlier signals (resident memory, vCPU
    /// statistics): when it may decide a squeeze, while a free-pages squeeze runs (whether it has
    /// its gain) and while a release ends (what it returned).
    public func wantsCostlySample(at elapsed: Duration) -> Bool {
        decisionDue(at: elapsed) || state == .releasing || squeeze?.residentGoalBytes != nil
    }

    /// Whether the next `step` at `elapsed` may decide a squeeze.
    public func decisionDue(at elapsed: Duration) -> Bool {
        guard userTargetBytes == 0, state != .squeezing, state != .releasing else { return false }
        guard let last = lastDecision else { return true }
        return elapsed - last.elapsed >= settings.interval
    }

    /// The user set a balloon target (the caller applies it to the device): it wins over any
    /// squeeze, now and while it is non-zero.
    public mutating func userTargetChanged(to bytes: UInt64, at elapsed: Duration) {
        userTargetBytes = bytes
        if squeeze != nil {
            squeeze = nil
            counters.aborts[.userTarget, default: 0] += 1
        }
        if bytes > 0 {
            state = .userTarget
        } else {
            state = .releasing
            releaseProgressAt = elapsed
            releaseLastActual = .max
        }
    }

    /// One look at the guest; returns a balloon target to set, or nil to leave it.
    public mutating func step(_ observation: ReclaimObservation) -> UInt64? {
        if let statistics = observation.statistics {
            persistentCacheBytes = min(persistentCacheBytes ?? statistics.cacheBytes, statistics.cacheBytes)
            if statistics.cacheBytes <= persistentCacheBytes ?? 0 { availableOverFreeAtFloor = Self.availableOverFree(statistics) }
            let looksAvailable = statistics.freeBytes + reclaimableCache(statistics)
            if looksAvailable > statistics.availableBytes {
                reserveEstimateBytes = max(reserveEstimateBytes, looksAvailable - statistics.availableBytes)
            }
        }
        if userTargetBytes > 0 {
            state = .userTarget
            return nil
        }
        switch state {
        case .squeezing:
            return stepSqueeze(observation)
        case .releasing:
            // Done when the balloon is back at the user's target, or the driver stopped deflating.
            // Not on a timer while it still deflates: a squeeze started then would see `actual`
            // fall and take it for deflate-on-OOM.
            if observation.balloonActualBytes < releaseLastActual {
                releaseLastActual = observation.balloonActualBytes
                releaseProgressAt = observation.elapsed
            }
            if observation.balloonActualBytes <= userTargetBytes || observation.elapsed - releaseProgressAt >= settings.stallTimeout {
                // What the squeeze gave back: the fall of guest RAM's resident size across it. Not
                // the balloon's discards: a guest that zeroes what it allocates (Debian's kernels
                // default to init_on_alloc) makes free pages resident on their way into the balloon.
                var gain: UInt64 = 0
                if let from = releasedFrom, let now = observation.residentBytes, from > now { gain = from - now }
                counters.squeezedBytes += gain
                releasedFrom = nil
                // A free-pages squeeze that got (almost) nothing would only be repeated every
                // interval for nothing, each a pass over the guest's free memory: wait instead.
                // Not judged when the guest read pages in meanwhile: they made guest RAM resident
                // as fast as the squeeze gave it back (a guest refetching what the cache squeeze
                // before took made a free-pages squeeze look gainless, and the back-off kept 8 MiB
                // of resident free memory for half a minute).
                let faults = observation.statistics.map { $0.majorFaults &- min(releasedFaultsFrom, $0.majorFaults) } ?? 0
                if releasingFreePages, observation.residentBytes != nil, gain < settings.minimumFreeGainBytes,
                   faults < settings.refetchMajorFaults {
                    backOff(.noGain, at: observation.elapsed)
                }
                releasingFreePages = false
                state = pausedUntil == nil ? activity : pausedState
                // Decide again soon, from figures the guest makes after the release (it changed
                // them all): the resident free pages a squeeze leaves behind are worth a small one.
                lastDecision?.updates = observation.statisticsUpdates
                lastDecision?.elapsed = observation.elapsed - settings.interval + Self.settleAfterRelease
            }
            return nil
        case .userTarget:
            state = .starting
            lastDecision = nil
        default:
            break
        }
        // Reads seen between decisions: the next one comes soon, and rechecks follow them as
        // below, instead of waiting for the interval (reads that began and ended between two
        // decisions were found only by the next one: a squeeze up to 5 s after them).
        if var last = lastDecision, observation.deviceRequests > last.deviceRequests {
            last.elapsed = min(last.elapsed, observation.elapsed - settings.interval + Self.recheckAfterReading)
            lastDecision = last
        }
        guard decisionDue(at: observation.elapsed) else { return nil }
        return decide(observation)
    }

    // MARK: Deciding

    private mutating func decide(_ now: ReclaimObservation) -> UInt64? {
        let previous = lastDecision
        // Two updates of the guest's figures, the later one fresh: deltas mean something. With no
        // fresh update yet the decision stays due, and the next tick looks again: taken as made,
        // it put the next one a whole interval off (the guest's figures come once a second, and a
        // recheck after reading found none new half the time: a squeeze 5 s late). They are
        // asked for at once, not waited for from the guest's timer (up to a second).
        if let previous, now.statisticsUpdates <= previous.updates {
            statisticsWanted = true
            return nil
        }
        lastDecision = Baseline(elapsed: now.elapsed, observedAt: now.elapsed, updates: now.statisticsUpdates, halted: now.haltedNanoseconds,
                                deviceRequests: now.deviceRequests, networkBytes: now.networkBytes, statistics: now.statistics)
        guard let statistics = now.statistics, let previous, let before = previous.statistics else { return nil }

        if let kills = statistics.oomKills, let killsBefore = before.oomKills, kills > killsBefore {
            stop(at: now.elapsed)
            return nil
        }
        if statistics.swapOutBytes > before.swapOutBytes {
            backOff(.swap, at: now.elapsed)
            return nil
        }
        if let watch = refetchWatch {
            let faults = statistics.majorFaults &- watch.majorFaults
            if statistics.majorFaults >= watch.majorFaults, faults >= settings.refetchMajorFaults {
                refetchWatch = nil
                raiseFloor(refetchedBytes: faults * GuestPage.bytes)
                backOff(.refetch, at: now.elapsed)
                return nil
            }
            if now.elapsed >= watch.until { refetchWatch = nil }
        }
        // Backed off for a refetch, only free pages may be squeezed for: the cache squeeze whose
        // leftovers they are is what the guest read back, not them (without this, a refetch of a
        // hot file after the first squeeze left its resident free pages for the whole back-off).
        // Backed off for a free-pages squeeze that gained nothing, only cache.
        var freePagesOnly = false
        var cacheOnly = false
        if let until = pausedUntil {
            if now.elapsed < until {
                switch pauseAllows {
                case .nothing: return nil
                case .freePagesOnly: freePagesOnly = true
                case .cacheOnly: cacheOnly = true
                }
            } else {
                pausedUntil = nil
                pauseAllows = .nothing
            }
        }

        let share = busyShare(now, since: previous)
        lastBusyShare = share
        let reading = now.deviceRequests > previous.deviceRequests
        let transferring = isTransferring(now, since: previous)
        let busy = share > settings.idleBusyShare || reading || transferring
        activity = busy ? .busy : .idle
        state = freePagesOnly || cacheOnly ? pausedState : activity
        // The guest is filling its cache from a disk right now: squeezing would take what it is
        // reading (and cost it a pass over its free memory). Look again in a second rather than
        // an interval: the cache it read is coldest, and cheapest to return, once it stops (on
        // the emulated host this took 5-10 s off the time to return a guest's cache).
        // The same while it moves data on the network: its buffers and the files it writes are
        // in use, and a squeeze then took a 512 MiB guest's free memory in the middle of a
        // transfer (the driver deflated on OOM, and the transfer ran at half speed).
        if transferring { lastTransferAt = now.elapsed }
        let betweenTransfers = busy && lastTransferAt.map { now.elapsed - $0 < settings.quietAfterTransfer } == true
        guard !reading, !transferring, !betweenTransfers else {
            lastDecision?.elapsed = now.elapsed - settings.interval + Self.recheckAfterReading
            return nil
        }
        // Faulting in already: the guest is short of memory or reading a mapped file; squeezing
        // now would take what it is using.
        let faults = statistics.majorFaults >= before.majorFaults ? statistics.majorFaults - before.majorFaults : 0
        guard faults < settings.refetchMajorFaults else { return nil }

        let reclaimable = reclaimableCache(statistics)
        let excess = reclaimable > floorBytes ? reclaimable - floorBytes : 0
        let busyMargin = share >= settings.marginBusyShare ? UInt64(Double(guestRAMBytes) * settings.busyCacheMarginShare) : 0
        var cacheTake = freePagesOnly ? 0 : busy ? min(excess &- min(busyMargin, excess), settings.busyStepBytes) : excess
        let used = guestRAMBytes > statistics.freeBytes ? guestRAMBytes - statistics.freeBytes : 0
        let residentFree = now.residentBytes.map { $0 > used ? $0 - used : 0 } ?? 0
        // Every squeeze costs the guest a pass over its free memory (Linux zeroes what it
        // allocates for the balloon when init_on_alloc is on, as in Debian's kernels): worth it
        // only for a gain of at least a sixteenth of that.
        // A cache squeeze asks for all the free memory first, a free-pages one only for twice
        // what the host still backs (the guest's allocator hands out its per-CPU lists and its
        // smallest free fragments first: the recently freed, resident pages).
        // A cache excess too small for that still leaves the free pages: squeezed for alone (the
        // emulated host's idle guest kept 5 MiB of cache above the floor, and so 15 MiB of
        // resident free memory for good).
        let leftoverDue = !busy && busyLeftCache && cacheTake >= Self.smallestStageBytes
        if cacheTake > 0, !leftoverDue, cacheTake + residentFree < max(settings.minimumGainBytes, statistics.freeBytes / 16) { cacheTake = 0 }
        if cacheTake > 0 { busyLeftCache = busy && excess > cacheTake }
        if cacheTake == 0 {
            guard !cacheOnly, residentFree >= settings.minimumFreeGainBytes || freePagesFollowUpDue else { return nil }
        }

        // The balloon takes free memory first, then the guest reclaims cache for what it asks
        // beyond that, less the free memory the guest keeps back (its watermark reserves, which
        // Ebb can only estimate): so the first stage asks for the free memory and the cache less
        // that reserve, and each next stage for what fresh figures show is left above `keep`
        // (see stepSqueeze). Asking for it all at once, with figures a second late, took the
        // guest's hot cache too.
        // For free pages alone (no cache above the floor), twice the resident free memory plus
        // the guest's per-CPU free lists, within the guest's own MemAvailable (which leaves out
        // its reserves, so its cache is not touched).
        let keep = floorBytes + (excess - cacheTake)
        let perCPULists = UInt64(Double(guestRAMBytes) * settings.perCPUFreeListShare)
        let wanted = cacheTake > 0 ? (statistics.freeBytes + cacheTake) &- min(reserveEstimateBytes, statistics.freeBytes + cacheTake)
                                   : min(statistics.availableBytes &- min(keep, statistics.availableBytes), 2 * residentFree + perCPULists)
        let amount = wanted / GuestPage.bytes * GuestPage.bytes
        guard amount > 0 else { return nil }
        let target = now.balloonActualBytes + amount
        let followsCacheSqueeze = cacheTake == 0 && freePagesFollowUpDue
        squeeze = Squeeze(target: target, startedAt: now.elapsed, lastActual: now.balloonActualBytes,
                          progressAt: now.elapsed, residentAtStart: now.residentBytes,
                          deflatedAtStart: now.deflatedBytes, keepCacheBytes: cacheTake > 0 ? keep : nil,
                          updatesAtStart: now.statisticsUpdates, cacheBudgetBytes: cacheTake, reclaimableAtStage: reclaimable,
                          residentGoalBytes: cacheTake > 0 ? nil : residentFree,
                          followsCacheSqueeze: followsCacheSqueeze,
                          goalCountsFrom: followsCacheSqueeze ? now.balloonActualBytes + residentFree + perCPULists : 0,
                          majorFaultsAtStart: statistics.majorFaults)
        freePagesFollowUpDue = false
        counters.squeezes += 1
        if cacheTake == 0 { counters.freePagesSqueezes += 1 }
        state = .squeezing
        return target
    }

    /// Whether the NICs moved more than `transferBytesPerSecond` since `previous`.
    private func isTransferring(_ now: ReclaimObservation, since previous: Baseline) -> Bool {
        guard now.networkBytes > previous.networkBytes else { return false }
        let seconds = max(Double((now.elapsed - previous.observedAt).nanoseconds) / 1e9, 0.001)
        return Double(now.networkBytes - previous.networkBytes) / seconds > Double(settings.transferBytesPerSecond)
    }

    /// The vCPUs' share of the time since `previous` that they were not halted; 1 when unknown.
    private func busyShare(_ now: ReclaimObservation, since previous: Baseline) -> Double {
        guard let halted = now.haltedNanoseconds, let haltedBefore = previous.halted, halted >= haltedBefore,
              now.vcpuCount > 0 else { return 1 }
        let wall = Double((now.elapsed - previous.observedAt).nanoseconds) * Double(now.vcpuCount)
        guard wall > 0 else { return 1 }
        return max(0, 1 - Double(halted - haltedBefore) / wall)
    }

    // MARK: Squeezing

    private mutating func stepSqueeze(_ now: ReclaimObservation) -> UInt64? {
        guard var current = squeeze else { return release(at: now.elapsed) }
        let actual = now.balloonActualBytes
        // The driver gave pages back through its deflate queue in the middle of an inflation:
        // that is deflate-on-OOM.
        if now.deflatedBytes > current.deflatedAtStart {
            end(current, now, abort: .outOfMemory)
            stop(at: now.elapsed)
            return release(at: now.elapsed)
        }
        // `actual` fell with no page given back: the device was reset, which drops the balloon
        // whole (a guest powering off resets its virtio devices). Nothing to learn from: taken for
        // an OOM, it failed a test whose guest powered off in the middle of a squeeze.
        if actual < current.lastActual {
            end(current, now, abort: .driverReset)
            return release(at: now.elapsed)
        }
        if cacheIsDown(to: current, now) || hasItsResidentGain(current, now) {
            end(current, now, abort: nil)
            return release(at: now.elapsed)
        }
        if actual >= current.target {
            guard let keep = current.keepCacheBytes, current.stages < Self.maximumStages, let statistics = now.statistics else {
                end(current, now, abort: nil)
                return release(at: now.elapsed)
            }
            // Wait for figures the guest made after this stage, then size the next one. Asked
            // for at once (`takeStatisticsRequest`) rather than at the next tick of the
            // statistics timer: the wait between stages was 1-2 s of the squeeze. Fresh are the
            // figures that answer a request made since; where requests are not known (a
            // simulated guest), the second update after the stage.
            guard let reached = current.reachedAtUpdates else {
                current.reachedAtUpdates = now.statisticsUpdates
                current.reachedAtRequest = now.statisticsRequests
                current.progressAt = now.elapsed
                statisticsWanted = true
                squeeze = current
                return nil
            }
            let fresh = now.answeredStatisticsRequest > current.reachedAtRequest || now.statisticsUpdates > reached + 1
            guard fresh else {
                squeeze = current
                return nil
            }
            let reclaimable = reclaimableCache(statistics)
            let taken = current.reclaimableAtStage &- min(reclaimable, current.reclaimableAtStage)
            current.cacheBudgetBytes &-= min(taken, current.cacheBudgetBytes)
            let next = min(reclaimable &- min(keep, reclaimable), current.cacheBudgetBytes) / GuestPage.bytes * GuestPage.bytes
            guard next >= Self.smallestStageBytes else {
                end(current, now, abort: nil)
                return release(at: now.elapsed)
            }
            current.target = actual + next
            current.reclaimableAtStage = reclaimable
            current.reachedAtUpdates = nil
            current.stages += 1
            current.progressAt = now.elapsed
            squeeze = current
            return current.target
        }
        // Progress is a few MiB, not a page: a guest with nothing left to give (its "cache" is
        // tmpfs) retries its allocations five times a second and gets the odd page kswapd freed,
        // which kept a squeeze under full pressure until it timed out.
        if actual >= current.lastActual + Self.smallestStageBytes {
            current.lastActual = actual
            current.progressAt = now.elapsed
        }
        if now.elapsed - current.progressAt >= settings.stallTimeout {
            // The cache the guest held on to under the squeeze is none it can drop (the guest
            // reports tmpfs and shmem as cache): counted as such, or every squeeze after the
            // back-off would come for it again, each a pass over the guest's free memory.
            // Only once the balloon has had the free memory: before that the guest was never
            // asked for its cache.
            if current.keepCacheBytes != nil, let statistics = now.statistics, now.statisticsUpdates > current.updatesAtStart,
               statistics.freeBytes <= reserveEstimateBytes + settings.minimumGainBytes {
                persistentCacheBytes = max(persistentCacheBytes ?? 0, statistics.cacheBytes)
                availableOverFreeAtFloor = Self.availableOverFree(statistics)
            }
            end(current, now, abort: .stalled)
            backOff(.stall, at: now.elapsed)
            return release(at: now.elapsed)
        }
        if now.elapsed - current.startedAt >= settings.squeezeTimeout {
            end(current, now, abort: .timedOut)
            return release(at: now.elapsed)
        }
        squeeze = current
        return nil
    }

    /// Fresh figures show the guest's reclaimable cache down to what the squeeze leaves it.
    private func cacheIsDown(to squeeze: Squeeze, _ now: ReclaimObservation) -> Bool {
        guard let keep = squeeze.keepCacheBytes, let statistics = now.statistics,
              now.statisticsUpdates > squeeze.updatesAtStart else { return false }
        return reclaimableCache(statistics) <= keep
    }

    /// A free-pages squeeze has given back all but a few MiB of the resident free memory it came for.
    private func hasItsResidentGain(_ squeeze: Squeeze, _ now: ReclaimObservation) -> Bool {
        guard now.balloonActualBytes >= squeeze.goalCountsFrom, let goal = squeeze.residentGoalBytes,
              let start = squeeze.residentAtStart, let resident = now.residentBytes, start > resident else { return false }
        return start - resident + settings.minimumFreeGainBytes / 2 >= goal
    }

    private func reclaimableCache(_ statistics: GuestMemoryStatistics) -> UInt64 {
        let aboveFloor = statistics.cacheBytes &- min(persistentCacheBytes ?? 0, statistics.cacheBytes)
        guard let atFloor = availableOverFreeAtFloor else { return aboveFloor }
        let fileGrowth = max(0, Self.availableOverFree(statistics) - atFloor)
        return min(aboveFloor, UInt64(fileGrowth) * 2)
    }

    private static func availableOverFree(_ statistics: GuestMemoryStatistics) -> Int64 {
        Int64(clamping: statistics.availableBytes) - Int64(clamping: statistics.freeBytes)
    }

    private mutating func end(_ finished: Squeeze, _ now: ReclaimObservation, abort: Abort?) {
        squeeze = nil
        releasedFrom = finished.residentAtStart
        releasedFaultsFrom = finished.majorFaultsAtStart
        releasingFreePages = finished.residentGoalBytes != nil && !finished.followsCacheSqueeze
        if let abort { counters.aborts[abort, default: 0] += 1 }
        // Only a squeeze that took cache can make the guest read it back, and leave resident
        // free memory the guest does not show.
        if finished.residentGoalBytes == nil {
            freePagesFollowUpDue = true
            if let faults = now.statistics?.majorFaults {
                refetchWatch = (faults, now.elapsed + settings.interval * settings.refetchWatchIntervals)
            }
        }
    }

    /// Deflate at once: the guest keeps all its memory.
    private mutating func release(at elapsed: Duration) -> UInt64 {
        squeeze = nil
        state = .releasing
        releaseProgressAt = elapsed
        releaseLastActual = .max
        return userTargetBytes
    }

    private mutating func backOff(_ reason: BackOff, at elapsed: Duration) {
        counters.backOffs[reason, default: 0] += 1
        // One reason alone may leave something to squeeze for; two leave nothing.
        let allows: PauseScope = switch reason {
        case .refetch: .freePagesOnly
        case .noGain: .cacheOnly
        default: .nothing
        }
        pauseAllows = pausedUntil == nil || pauseAllows == allows ? allows : .nothing
        let until = elapsed + settings.interval * settings.backOffIntervals
        guard pausedUntil.map({ $0 < until }) ?? true else { return }
        pausedUntil = until
        pausedState = .backedOff
        state = .backedOff
    }

    private mutating func stop(at elapsed: Duration) {
        counters.backOffs[.outOfMemory, default: 0] += 1
        pauseAllows = .nothing
        pausedUntil = elapsed + settings.outOfMemoryPause
        pausedState = .stopped
        state = .stopped
    }

    private mutating func raiseFloor(refetchedBytes: UInt64) {
        let ceiling = UInt64(Double(guestRAMBytes) * settings.maximumFloorShare) / GuestPage.bytes * GuestPage.bytes
        floorBytes = min(max(floorBytes * 2, floorBytes + refetchedBytes), max(ceiling, settings.cacheFloorBytes))
    }
}

/// What the squeezes have done so far.
public struct ReclaimCounters: Sendable, Equatable {
    /// Squeezes started, and the resident bytes their inflations gave back to the host.
    public var squeezes: UInt64 = 0
    /// Those of them that came for free pages alone (the one after each cache squeeze among them).
    public var freePagesSqueezes: UInt64 = 0
    public var cacheSqueezes: UInt64 { squeezes - freePagesSqueezes }
    public var squeezedBytes: UInt64 = 0
    public var aborts: [ReclaimPolicy.Abort: UInt64] = [:]
    public var backOffs: [ReclaimPolicy.BackOff: UInt64] = [:]

    public init() {}
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
