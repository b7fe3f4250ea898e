import Testing
@testable import VMM

/// A guest as the reclaim policy sees it from outside, simulated: anonymous memory, tmpfs (in the
/// cache statistic, never reclaimed), page cache (cold first, then hot; read in after the first
/// second, as a guest reads its disk after boot), free memory some of which the host still
/// backs, and a balloon driver
/// that follows its target a step per tick, taking free memory first and then cache, as Linux's
/// reclaim gives it up to the balloon's allocations.
struct SimulatedGuest {
    static let mib: UInt64 = 1 << 20
    let ramBytes: UInt64
    var anonymousBytes: UInt64
    var coldCacheBytes: UInt64 = 0
    var hotCacheBytes: UInt64 = 0
    var shmemBytes: UInt64
    /// Cache MemAvailable counts that reclaim still cannot drop (pages in use).
    var pinnedCacheBytes: UInt64 = 0
    /// The cache the guest reads in once its first second has passed.
    var pendingCache: (cold: UInt64, hot: UInt64)?
    /// Free guest memory the host still has resident (scattered pages free page reporting missed).
    var residentFreeBytes: UInt64 = 0
    /// Resident memory the guest counts as neither used nor free that no balloon can take (its
    /// per-CPU free lists, say): it looks like resident free memory from outside.
    var unreachableResidentBytes: UInt64 = 0
    /// Free pages on the guest's per-CPU lists: not in MemFree (so in use, from outside), not
    /// resident (a deflation put them there), and the first the balloon gets.
    var perCPUListBytes: UInt64 = 0
    var balloonBytes: UInt64 = 0
    var targetBytes: UInt64 = 0
    /// How far the driver moves per tick; 0: it never follows (a stalled inflation).
    var driverStepBytes: UInt64 = 64 << 20
    /// Free memory the guest keeps back from the balloon, reclaiming cache instead (its watermark
    /// reserves); MemAvailable leaves it out.
    var reserveBytes: UInt64 = 0
    /// What the balloon still gets each tick once the guest has nothing left to give: the odd
    /// page kswapd freed, out of its reserves.
    var trickleBytes: UInt64 = 0
    /// Bytes the guest's NICs have moved so far, and requests its disks served.
    var networkBytes: UInt64 = 0
    var deviceRequests: UInt64 = 0
    var busy = false
    /// When not `busy`, the share of the time its vCPU still runs (a shell loop, a timer).
    var runShare = 0.0
    var majorFaults: UInt64 = 0
    var swapOutBytes: UInt64 = 0
    var oomKills: UInt64? = 0
    var statisticsUpdates: UInt64 = 0
    /// With `requestedStatistics`, the guest sends figures as Linux's driver does: once a second
    /// (the statistics timer) and whenever Ebb asks, each answering a numbered request; without,
    /// fresh figures every tick and no requests known.
    var requestedStatistics = false
    var statisticsPeriodSeconds: Int64 = 1
    var statisticsRequests: UInt64 = 0
    var answeredStatisticsRequest: UInt64 = 0
    var haltedNanoseconds: UInt64 = 0
    var deflatedBytes: UInt64 = 0
    var elapsed: Duration = .zero

    var cacheBytes: UInt64 { coldCacheBytes + hotCacheBytes + shmemBytes + pinnedCacheBytes }
    var freeBytes: UInt64 { ramBytes - anonymousBytes - cacheBytes - balloonBytes - perCPUListBytes }
    /// What the host holds: everything the guest uses plus the free pages still backed.
    var hostResidentBytes: UInt64 { anonymousBytes + cacheBytes + residentFreeBytes + unreachableResidentBytes }

    init(ramMiB: UInt64 = 1024, anonymousMiB: UInt64 = 100, coldCacheMiB: UInt64 = 0, hotCacheMiB: UInt64 = 0, shmemMiB: UInt64 = 4) {
        ramBytes = ramMiB * Self.mib
        anonymousBytes = anonymousMiB * Self.mib
        shmemBytes = shmemMiB * Self.mib
        pendingCache = (coldCacheMiB * Self.mib, hotCacheMiB * Self.mib)
    }

    /// A quarter second: the driver moves toward the target, the statistics are refreshed.
    mutating func tick(_ step: Duration = IdleReclaimer.tick) {
        elapsed += step
        if let pending = pendingCache, elapsed >= .seconds(1) {
            coldCacheBytes += pending.cold
            hotCacheBytes += pending.hot
            pendingCache = nil
        }
        if !busy { haltedNanoseconds += UInt64(Double(step.nanoseconds) * (1 - runShare)) }
        if targetBytes > balloonBytes {
            var take = min(targetBytes - balloonBytes, driverStepBytes)
            let fromLists = min(take, perCPUListBytes)
            perCPUListBytes -= fromLists
            balloonBytes += fromLists
            take -= fromLists
            // Free pages first (the resident ones among them are given back), then cold cache,
            // then hot; a guest with nothing left to give stops there.
            let fromFree = min(take, freeBytes > reserveBytes ? freeBytes - reserveBytes : 0)
            let residentTaken = min(residentFreeBytes, fromFree)
            residentFreeBytes -= residentTaken
            balloonBytes += fromFree
            take -= fromFree
            // In this guest, the balloon gets no more than it asked: reclaim refills what it took.
            for keyPath in [\SimulatedGuest.coldCacheBytes, \SimulatedGuest.hotCacheBytes] where take > 0 {
                let evicted = min(take, self[keyPath: keyPath])
                self[keyPath: keyPath] -= evicted
                balloonBytes += evicted
                take -= evicted
            }
            balloonBytes += min(take, trickleBytes, freeBytes)
        } else if targetBytes < balloonBytes {
            // Deflated pages come back free, and the host no longer backs them.
            deflate(min(balloonBytes - targetBytes, max(driverStepBytes, 64 << 20)))
        }
        if !requestedStatistics {
            statisticsUpdates += 1
        } else if elapsed.components.attoseconds == 0, elapsed.components.seconds % statisticsPeriodSeconds == 0 {
            answerStatisticsRequest()
        }
    }

    /// Ebb hands the statistics buffer back; the driver answers with fresh figures.
    mutating func answerStatisticsRequest() {
        statisticsRequests += 1
        answeredStatisticsRequest = statisticsRequests
        statisticsUpdates += 1
    }

    mutating func deflate(_ bytes: UInt64) {
        balloonBytes -= bytes
        deflatedBytes += bytes
    }

    func observation(resident: Bool) -> ReclaimObservation {
        // MemAvailable: free plus the file cache (never tmpfs).
        let available = (freeBytes > reserveBytes ? freeBytes - reserveBytes : 0) + coldCacheBytes + hotCacheBytes + pinnedCacheBytes
        let statistics = GuestMemoryStatistics(freeBytes: freeBytes, availableBytes: available, cacheBytes: cacheBytes,
                                               totalBytes: ramBytes, majorFaults: majorFaults, swapOutBytes: swapOutBytes,
                                               oomKills: oomKills)
        var observation = ReclaimObservation(elapsed: elapsed, statistics: statistics, statisticsUpdates: statisticsUpdates,
                                             haltedNanoseconds: haltedNanoseconds, vcpuCount: 1, deviceRequests: deviceRequests,
                                             networkBytes: networkBytes, residentBytes: resident ? hostResidentBytes : nil,
                                             balloonActualBytes: balloonBytes, deflatedBytes: deflatedBytes)
        observation.statisticsRequests = statisticsRequests
        observation.answeredStatisticsRequest = answeredStatisticsRequest
        return observation
    }
}

/// Drives a policy against a simulated guest as `IdleReclaimer` drives it against a machine.
struct ReclaimSimulation {
    var guest: SimulatedGuest
    var policy: ReclaimPolicy
    /// Every target the policy set, in order.
    var targets: [UInt64] = []
    /// The most the balloon held at any tick.
    var largestBalloon: UInt64 = 0
    /// Whether the policy's requests for statistics reach the guest (as `IdleReclaimer` sends them).
    var asksForStatistics = true

    /// The settings the tests' figures assume (the defaults may change).
    static let settings = ReclaimSettings(interval: .seconds(5), cacheFloorBytes: 8 << 20)

    init(_ guest: SimulatedGuest, settings: ReclaimSettings = Self.settings, userTarget: UInt64 = 0) {
        self.guest = guest
        policy = ReclaimPolicy(settings: settings, guestRAMBytes: guest.ramBytes, userTargetBytes: userTarget)
        self.guest.targetBytes = userTarget
    }

    mutating func run(for duration: Duration, each: (inout ReclaimSimulation) -> Void = { _ in }) {
        let end = guest.elapsed + duration
        while guest.elapsed < end {
            guest.tick()
            let due = policy.wantsCostlySample(at: guest.elapsed)
            if let target = policy.step(guest.observation(resident: due)) {
                targets.append(target)
                guest.targetBytes = target
            }
            if policy.takeStatisticsRequest(), guest.requestedStatistics, asksForStatistics { guest.answerStatisticsRequest() }
            largestBalloon = max(largestBalloon, guest.balloonBytes)
            each(&self)
        }
    }

    mutating func setUserTarget(_ bytes: UInt64) {
        policy.userTargetChanged(to: bytes, at: guest.elapsed)
        guest.targetBytes = bytes
    }
}

@Suite struct ReclaimPolicyTests {
    static let mib = SimulatedGuest.mib

    @Test func anIdleGuestsColdCacheGoesBackDownToTheFloorInOneSqueezeAndTheGuestKeepsItsMemory() {
        var simulation = ReclaimSimulation(SimulatedGuest(coldCacheMiB: 256, hotCacheMiB: 4))
        simulation.run(for: .seconds(30))
        let guest = simulation.guest
        #expect(simulation.policy.counters.cacheSqueezes == 1)
        #expect(guest.cacheBytes - guest.shmemBytes <= 8 * Self.mib, "cache left: \(guest.cacheBytes / Self.mib) MiB")
        #expect(guest.hotCacheBytes == 4 * Self.mib, "the guest's LRU keeps its hot cache")
        #expect(guest.balloonBytes == 0, "the balloon is let go at once")
        #expect(guest.hostResidentBytes <= guest.anonymousBytes + guest.shmemBytes + 8 * Self.mib)
        #expect(simulation.policy.counters.squeezedBytes >= 250 * Self.mib, "the resident size fell by what the squeeze took")
        #expect(simulation.policy.state == .idle)
        // Never more than the guest had available above the floor.
        #expect(simulation.largestBalloon <= guest.ramBytes - guest.anonymousBytes - 8 * Self.mib)
    }

    @Test func aGuestThatKeepsFreeMemoryBackIsSqueezedInStagesAndKeepsItsHotCache() {
        // 60 MiB of reserves: asking for the free memory and the cache at once would take the hot
        // cache too. The reserve is learnt from the guest's figures (MemAvailable leaves it out).
        var guest = SimulatedGuest(coldCacheMiB: 250, hotCacheMiB: 4)
        guest.reserveBytes = 60 * Self.mib
        var simulation = ReclaimSimulation(guest)
        simulation.run(for: .seconds(40))
        #expect(simulation.policy.reserveEstimateBytes == 60 * Self.mib)
        #expect(simulation.policy.counters.cacheSqueezes == 1)
        #expect(simulation.targets.last == 0)
        #expect(simulation.guest.hotCacheBytes == 4 * Self.mib)
        #expect(simulation.guest.coldCacheBytes <= 8 * Self.mib)
        #expect(simulation.guest.balloonBytes == 0)
    }

    /// Between stages the policy asks for the guest's figures at once and sizes the next stage
    /// from the first that answer a request made after the last one ended: within a tick or two,
    /// where the statistics timer alone took one to two seconds.
    @Test func theNextStageFollowsTheFirstFiguresMadeAfterThePreviousOne() {
        for asks in [true, false] {
            var guest = SimulatedGuest(coldCacheMiB: 250, hotCacheMiB: 4)
            guest.reserveBytes = 60 * Self.mib
            guest.requestedStatistics = true
            // A slow timer, so that its own figures cannot be what the next stage waited for.
            guest.statisticsPeriodSeconds = 4
            var simulation = ReclaimSimulation(guest)
            simulation.asksForStatistics = asks
            var reachedAt: Duration?
            var nextStageAt: Duration?
            simulation.run(for: .seconds(60)) { simulation in
                // The guest keeps back less than it did (kswapd overshoots): the first stage,
                // sized by the old reserve, leaves cold cache for a second one.
                if simulation.policy.state == .squeezing { simulation.guest.reserveBytes = 20 * Self.mib }
                let targets = simulation.targets
                if targets.count == 1, reachedAt == nil, simulation.guest.balloonBytes >= targets[0] { reachedAt = simulation.guest.elapsed }
                if targets.count == 2, nextStageAt == nil { nextStageAt = simulation.guest.elapsed }
            }
            #expect(simulation.policy.counters.cacheSqueezes == 1)
            #expect(simulation.guest.hotCacheBytes == 4 * Self.mib)
            #expect(simulation.guest.coldCacheBytes <= 8 * Self.mib)
            guard let reachedAt, let nextStageAt else {
                Issue.record("no second stage: targets \(simulation.targets.map { $0 / Self.mib }), squeezes \(simulation.policy.counters.squeezes), reached \(String(describing: reachedAt))")
                continue
            }
            let wait = nextStageAt - reachedAt
            if asks {
                #expect(wait <= .milliseconds(500), "the next stage came \(wait) after the first one ended")
            } else {
                #expect(wait > .milliseconds(500), "without asking, the next stage waits for the timer: \(wait)")
            }
        }
    }

    @Test func aBusyGuestGivesItsCacheBackInBoundedSteps() {
        var guest = SimulatedGuest(ramMiB: 2048, coldCacheMiB: 700)
        guest.busy = true
        var simulation = ReclaimSimulation(guest)
        var cacheAtEachSqueeze: [UInt64] = []
        var leastCache = UInt64.max
        simulation.run(for: .seconds(60)) { simulation in
            if simulation.policy.state == .squeezing, cacheAtEachSqueeze.count < simulation.policy.counters.squeezes {
                cacheAtEachSqueeze.append(simulation.guest.cacheBytes)
            }
            if simulation.guest.pendingCache == nil { leastCache = min(leastCache, simulation.guest.coldCacheBytes) }
        }
        #expect(simulation.policy.counters.squeezes >= 3, "700 MiB in steps of at most 256 MiB")
        // All of it but the margin a running guest keeps (a thirty-second of 2 GiB) and the floor.
        let margin: UInt64 = 64 * Self.mib
        #expect(leastCache >= margin, "a squeeze of a busy guest left it \(leastCache / Self.mib) MiB of cache")
        #expect(simulation.guest.coldCacheBytes <= margin + 8 * Self.mib)
        #expect(simulation.policy.state == .busy)
        // Each squeeze asked for the free memory plus at most one step of cache.
        for target in simulation.targets where target > 0 {
            #expect(target <= 2048 * Self.mib - 100 * Self.mib)
        }
        #expect(cacheAtEachSqueeze.count >= 3)
        // Idle, it gives up the margin too, though less than a sixteenth of its free memory.
        simulation.guest.busy = false
        simulation.run(for: .seconds(20))
        #expect(simulation.guest.coldCacheBytes <= 8 * Self.mib)
    }

    /// A guest that runs a tenth of the time is busy, but not so busy that its programs need a
    /// margin of cache through a squeeze: it gives all its cache above the floor in one.
    @Test func aGuestBusyATenthOfTheTimeKeepsNoMargin() {
        var guest = SimulatedGuest(coldCacheMiB: 200)
        guest.runShare = 0.1
        var simulation = ReclaimSimulation(guest)
        simulation.run(for: .seconds(15))
        #expect(simulation.policy.state == .busy)
        #expect(simulation.policy.counters.cacheSqueezes == 1)
        #expect(simulation.guest.coldCacheBytes <= 8 * Self.mib, "cache left: \(simulation.guest.coldCacheBytes / Self.mib) MiB")
    }

    @Test func scatteredFreePagesTheHostStillBacksComeBackWithoutAnyCache() {
        var guest = SimulatedGuest(coldCacheMiB: 0)
        guest.residentFreeBytes = 80 * Self.mib
        var simulation = ReclaimSimulation(guest)
        simulation.run(for: .seconds(20))
        #expect(simulation.policy.counters.squeezes == 1)
        #expect(simulation.guest.residentFreeBytes == 0)
        #expect(simulation.policy.counters.squeezedBytes == 80 * Self.mib)
    }

    /// Twice the resident free memory it sees, plus a sixteenth of RAM for the guest's per-CPU
    /// free lists (the balloon empties them first).
    @Test func aFreePagesSqueezeAsksForTwiceWhatTheHostStillBacksAndThePerCPULists() {
        var guest = SimulatedGuest(coldCacheMiB: 0)
        guest.residentFreeBytes = 30 * Self.mib
        var simulation = ReclaimSimulation(guest)
        simulation.run(for: .seconds(30))
        #expect(simulation.policy.counters.squeezes == 1)
        #expect(simulation.targets.first == (60 + 64) * Self.mib, "\(simulation.targets.map { $0 / Self.mib })")
    }

    /// What the emulated host's guest showed after a cache squeeze: the deflation filled its
    /// per-CPU lists (20-37 MiB, free pages the host no longer backs, which MemFree leaves out)
    /// while 12 MiB of free memory stayed resident behind them. From outside that looks like no
    /// resident free memory at all; the free-pages squeeze after every cache squeeze gets it.
    @Test func residentFreeMemoryBehindTheGuestsPerCPUListsComesBackAfterACacheSqueeze() {
        var simulation = ReclaimSimulation(SimulatedGuest(coldCacheMiB: 256, hotCacheMiB: 4))
        var released = false
        simulation.run(for: .seconds(30)) { simulation in
            if !released, simulation.policy.counters.cacheSqueezes == 1, simulation.guest.balloonBytes == 0,
               simulation.policy.state != .squeezing {
                released = true
                simulation.guest.perCPUListBytes = 40 * Self.mib
                simulation.guest.residentFreeBytes += 12 * Self.mib
            }
        }
        #expect(released)
        #expect(simulation.policy.counters.freePagesSqueezes == 1)
        #expect(simulation.guest.residentFreeBytes == 0, "resident free left: \(simulation.guest.residentFreeBytes / Self.mib) MiB")
        #expect(simulation.guest.balloonBytes == 0)
        #expect(simulation.policy.counters.backOffs.isEmpty, "\(simulation.policy.counters.backOffs)")
    }

    @Test func aGuestDroppingItsCacheInTheMiddleOfASqueezeIsSqueezedAgainForWhatItFreed() throws {
        // The page-cache scenario's race: drop_caches lands while a squeeze inflates. The squeeze
        // ends (the cache is down), and what the drop freed, still backed by the host, comes back
        // in a free-pages squeeze a few seconds later, not at the next full interval (that
        // squeeze follows one for cache, so it takes the per-CPU lists' 64 MiB first: 2 s here).
        var guest = SimulatedGuest(coldCacheMiB: 256)
        guest.driverStepBytes = 8 << 20
        var simulation = ReclaimSimulation(guest)
        var droppedAt: Duration?
        var backAt: Duration?
        simulation.run(for: .seconds(40)) { simulation in
            if droppedAt == nil, simulation.policy.state == .squeezing, simulation.guest.balloonBytes >= 48 * Self.mib {
                simulation.guest.residentFreeBytes += simulation.guest.coldCacheBytes
                simulation.guest.coldCacheBytes = 0
                droppedAt = simulation.guest.elapsed
            }
            if let droppedAt, backAt == nil, simulation.guest.residentFreeBytes < 8 * Self.mib, simulation.guest.balloonBytes == 0 {
                backAt = simulation.guest.elapsed - droppedAt
            }
        }
        #expect(droppedAt != nil)
        #expect(simulation.policy.counters.squeezes == 2)
        let back = try #require(backAt, "resident free left: \(simulation.guest.residentFreeBytes / Self.mib) MiB")
        #expect(back <= .seconds(14), "back \(back) after the drop")
        #expect(simulation.guest.balloonBytes == 0)
    }

    /// A guest with no cache whose 40 MiB of resident "free" memory no balloon can take (its
    /// per-CPU lists, say): every free-pages squeeze for it gains nothing.
    static func guestWithUnreachableFreeMemory() -> ReclaimSimulation {
        var guest = SimulatedGuest(coldCacheMiB: 0)
        guest.unreachableResidentBytes = 40 * mib
        return ReclaimSimulation(guest)
    }

    @Test func aFreePagesSqueezeThatGainsNothingBacksOffInsteadOfRepeating() {
        var simulation = Self.guestWithUnreachableFreeMemory()
        simulation.run(for: .seconds(60))
        #expect(simulation.policy.counters.backOffs[.noGain] ?? 0 >= 1)
        #expect(simulation.policy.counters.squeezes <= 2, "\(simulation.policy.counters.squeezes) squeezes for nothing in 60 s")
        #expect(simulation.guest.balloonBytes == 0)
    }

    /// A guest reading pages in during a free-pages squeeze makes RAM resident as fast as the
    /// squeeze gives it back: that squeeze is not judged; the next one, without faults, is.
    @Test func aFreePagesSqueezeDuringMajorFaultsIsNotJudgedGainless() {
        var simulation = Self.guestWithUnreachableFreeMemory()
        var squeezesAtBackOff: UInt64?
        simulation.run(for: .seconds(60)) { simulation in
            if simulation.policy.state == .squeezing, simulation.policy.counters.squeezes == 1 {
                simulation.guest.majorFaults += 40
            }
            if squeezesAtBackOff == nil, simulation.policy.counters.backOffs[.noGain] != nil {
                squeezesAtBackOff = simulation.policy.counters.squeezes
            }
        }
        #expect(squeezesAtBackOff == 2, "backed off for no gain after squeeze \(squeezesAtBackOff.map(String.init) ?? "none")")
    }

    /// Backed off after a free-pages squeeze that gained nothing, the policy still squeezes for
    /// cache the guest reads meanwhile: the free pages it could not reach say nothing of that.
    @Test func cacheReadDuringANoGainBackOffIsStillSqueezedFor() {
        var simulation = Self.guestWithUnreachableFreeMemory()
        var backedOffAt: Duration?
        simulation.run(for: .seconds(40)) { simulation in
            if backedOffAt == nil, simulation.policy.counters.backOffs[.noGain] != nil {
                backedOffAt = simulation.guest.elapsed
                simulation.guest.coldCacheBytes += 260 * Self.mib
            }
        }
        #expect(backedOffAt != nil)
        #expect(simulation.policy.counters.squeezes == 2, "a free-pages squeeze, then one for the cache")
        #expect(simulation.guest.coldCacheBytes <= 8 * Self.mib, "cache left: \(simulation.guest.coldCacheBytes / Self.mib) MiB")
    }

    @Test func aSmallCacheExcessIsNotWorthAPassOverAllFreeMemory() {
        // 40 MiB of cache above the floor among 880 MiB free: the guest would zero 880 MiB for 40.
        var simulation = ReclaimSimulation(SimulatedGuest(coldCacheMiB: 48))
        simulation.run(for: .seconds(30))
        #expect(simulation.policy.counters.squeezes == 0)
    }

    @Test func aSmallCacheExcessStillLeavesTheFreePagesToBeSqueezedFor() {
        // 6 MiB of cache above the floor (not worth a pass over 880 MiB free) beside 30 MiB of free
        // pages the host still backs: those come back, the cache stays.
        var guest = SimulatedGuest(coldCacheMiB: 14)
        guest.residentFreeBytes = 30 * Self.mib
        var simulation = ReclaimSimulation(guest)
        simulation.run(for: .seconds(30))
        #expect(simulation.policy.counters.squeezes == 1)
        #expect(simulation.guest.residentFreeBytes < 8 * Self.mib, "resident free \(simulation.guest.residentFreeBytes / Self.mib) MiB")
        #expect(simulation.guest.coldCacheBytes == 14 * Self.mib)
        #expect(simulation.guest.balloonBytes == 0)
    }

    @Test func tmpfsInTheCacheFigureIsNeverSqueezedFor() {
        // 200 MiB of tmpfs from boot on: the cache statistic counts it, no reclaim can drop it.
        var simulation = ReclaimSimulation(SimulatedGuest(coldCacheMiB: 0, shmemMiB: 200))
        simulation.run(for: .seconds(60))
        #expect(simulation.policy.counters.squeezes == 0)
        #expect(simulation.policy.persistentCacheBytes == 200 * Self.mib)
    }

    @Test func aGuestReadingItsDiskIsLeftToFinish() {
        var simulation = ReclaimSimulation(SimulatedGuest(coldCacheMiB: 300))
        var requests: UInt64 = 0
        var observations: [ReclaimObservation] = []
        // Every tick another disk request: no squeeze, however much cache there is.
        for _ in 0..<120 {
            simulation.guest.tick()
            requests += 1
            var observation = simulation.guest.observation(resident: true)
            observation.deviceRequests = requests
            observations.append(observation)
            #expect(simulation.policy.step(observation) == nil)
        }
        #expect(simulation.policy.counters.squeezes == 0)
        #expect(simulation.policy.state == .busy)
    }

    /// Reading stops: the squeeze follows within a couple of seconds, not the next interval (5 s);
    /// also when the guest's figures come only once a second (as they do), so that a recheck
    /// finds none new: the decision then waits for them, not for the next interval.
    @Test(arguments: [false, true]) func aGuestThatStopsReadingIsSqueezedSoonAfter(figuresOnceASecond: Bool) {
        var guest = SimulatedGuest(coldCacheMiB: 300)
        guest.requestedStatistics = figuresOnceASecond
        var simulation = ReclaimSimulation(guest)
        var requests: UInt64 = 0
        for _ in 0..<(4 * 13) {
            simulation.guest.tick()
            requests += 1
            var observation = simulation.guest.observation(resident: true)
            observation.deviceRequests = requests
            #expect(simulation.policy.step(observation) == nil)
        }
        let stoppedAt = simulation.guest.elapsed
        var squeezedAt: Duration?
        while squeezedAt == nil, simulation.guest.elapsed < stoppedAt + .seconds(10) {
            simulation.guest.tick()
            var observation = simulation.guest.observation(resident: simulation.policy.wantsCostlySample(at: simulation.guest.elapsed))
            observation.deviceRequests = requests
            if simulation.policy.step(observation) != nil { squeezedAt = simulation.guest.elapsed }
        }
        let delay = squeezedAt.map { $0 - stoppedAt }
        #expect(delay != nil && delay! <= .seconds(2), "squeezed \(String(describing: delay)) after the reads stopped")
    }

    /// A decision that finds no fresh figures asks for them rather than wait for the guest's
    /// timer: with figures every 5 s, a guest that stopped reading is squeezed 1.75 s after
    /// (waiting for the timer: 9 s).
    @Test func aDecisionWithoutFreshFiguresAsksForThem() {
        var guest = SimulatedGuest(coldCacheMiB: 300)
        guest.requestedStatistics = true
        guest.statisticsPeriodSeconds = 5
        var simulation = ReclaimSimulation(guest)
        var squeezedAt: Duration?
        var stoppedAt: Duration?
        simulation.run(for: .seconds(20)) { simulation in
            if simulation.guest.elapsed < .seconds(6) {
                simulation.guest.deviceRequests += 1
            } else if stoppedAt == nil {
                stoppedAt = simulation.guest.elapsed
            }
            if squeezedAt == nil, simulation.policy.state == .squeezing { squeezedAt = simulation.guest.elapsed }
        }
        let delay = squeezedAt.flatMap { at in stoppedAt.map { at - $0 } }
        #expect(delay != nil && delay! <= .seconds(2), "squeezed \(String(describing: delay)) after the reads stopped")
    }

    /// Reads that begin and end between two decisions: the squeeze follows them as soon, not at
    /// the decision after them (up to an interval later).
    @Test func aShortReadBetweenDecisionsIsFollowedSoonToo() {
        var simulation = ReclaimSimulation(SimulatedGuest(coldCacheMiB: 300))
        var requests: UInt64 = 0
        var squeezedAt: Duration?
        // The first decision is at the first tick; the guest reads from 0.5 s to 1.5 s.
        while squeezedAt == nil, simulation.guest.elapsed < .seconds(10) {
            simulation.guest.tick()
            if simulation.guest.elapsed > .milliseconds(500), simulation.guest.elapsed <= .milliseconds(1500) { requests += 1 }
            var observation = simulation.guest.observation(resident: simulation.policy.wantsCostlySample(at: simulation.guest.elapsed))
            observation.deviceRequests = requests
            if simulation.policy.step(observation) != nil { squeezedAt = simulation.guest.elapsed }
        }
        let delay = squeezedAt.map { $0 - .milliseconds(1500) }
        #expect(delay != nil && delay! <= .seconds(2), "squeezed \(String(describing: delay)) after the reads stopped")
    }

    /// A guest moving megabytes a second on its NICs is left alone, as one reading its disk, and
    /// squeezed soon after it stops; background chatter (a few KiB a second) stops nothing.
    @Test func aGuestMovingDataOnTheNetworkIsLeftToFinish() {
        var simulation = ReclaimSimulation(SimulatedGuest(coldCacheMiB: 300))
        simulation.run(for: .seconds(30)) { $0.guest.networkBytes += 1 << 20 }
        #expect(simulation.policy.counters.squeezes == 0)
        #expect(simulation.policy.state == .busy)
        let stoppedAt = simulation.guest.elapsed
        var squeezedAt: Duration?
        simulation.run(for: .seconds(10)) { simulation in
            simulation.guest.networkBytes += 1 << 10
            if squeezedAt == nil, simulation.policy.state == .squeezing { squeezedAt = simulation.guest.elapsed }
        }
        let delay = squeezedAt.map { $0 - stoppedAt }
        #expect(delay != nil && delay! <= .seconds(2), "squeezed \(String(describing: delay)) after the transfer stopped")
        #expect(simulation.guest.coldCacheBytes <= 8 * Self.mib)
    }

    /// A guest busy between two transfers (preparing the next, checking the last) is left alone
    /// for `quietAfterTransfer`; busy on after that, or idle at once, it is squeezed.
    @Test func aBusyGuestBetweenTransfersIsLeftAlone() {
        var simulation = ReclaimSimulation(SimulatedGuest(coldCacheMiB: 300))
        simulation.guest.busy = true
        for _ in 0..<3 {
            simulation.run(for: .seconds(5)) { $0.guest.networkBytes += 1 << 20 }
            // A pause shorter than the quiet period, the vCPUs running all along.
            simulation.run(for: .seconds(4))
        }
        #expect(simulation.policy.counters.squeezes == 0)
        let stoppedAt = simulation.guest.elapsed
        var squeezedAt: Duration?
        simulation.run(for: .seconds(20)) { simulation in
            if squeezedAt == nil, simulation.policy.state == .squeezing { squeezedAt = simulation.guest.elapsed }
        }
        let delay = squeezedAt.map { $0 - stoppedAt }
        #expect(delay != nil && delay! >= ReclaimSimulation.settings.quietAfterTransfer - .seconds(4)
                && delay! <= ReclaimSimulation.settings.quietAfterTransfer + .seconds(2),
                "squeezed \(String(describing: delay)) after the last transfer")
    }

    /// tmpfs written after boot grows the cache figure but not MemAvailable: no squeeze for it.
    @Test func tmpfsWrittenAfterBootIsNeverSqueezedFor() {
        var simulation = ReclaimSimulation(SimulatedGuest(coldCacheMiB: 0, shmemMiB: 4))
        simulation.run(for: .seconds(6))
        simulation.guest.shmemBytes += 200 * Self.mib
        simulation.run(for: .seconds(120))
        #expect(simulation.policy.counters.squeezes == 0)
    }

    /// Cache MemAvailable counts but reclaim cannot drop: the squeeze for it takes the free
    /// memory and then gets only the odd page. It stalls, and the cache the guest held on to
    /// counts as tmpfs from then on, so no squeeze comes for it again.
    @Test func cacheASqueezeStalledOnIsNotSqueezedForAgain() {
        var guest = SimulatedGuest(coldCacheMiB: 0, shmemMiB: 4)
        guest.reserveBytes = 16 * Self.mib
        guest.trickleBytes = 64 << 10
        var simulation = ReclaimSimulation(guest)
        simulation.run(for: .seconds(6))
        simulation.guest.pinnedCacheBytes = 200 * Self.mib
        simulation.run(for: .seconds(30))
        #expect(simulation.policy.counters.squeezes == 1)
        #expect(simulation.policy.counters.aborts[.stalled] == 1, "\(simulation.policy.counters)")
        #expect(simulation.policy.persistentCacheBytes == 204 * Self.mib)
        #expect(simulation.guest.balloonBytes == 0, "let go")
        simulation.run(for: .seconds(120))
        #expect(simulation.policy.counters.cacheSqueezes == 1, "no squeeze for that cache after the back-off")
    }

    /// A driver that never inflates stalls the squeeze before the guest was asked for its cache:
    /// that cache still counts as cache.
    @Test func aStallBeforeTheFreeMemoryWasTakenLearnsNothing() {
        var guest = SimulatedGuest(coldCacheMiB: 256)
        guest.driverStepBytes = 0
        var simulation = ReclaimSimulation(guest)
        simulation.run(for: .seconds(15))
        #expect(simulation.policy.counters.aborts[.stalled] == 1)
        #expect(simulation.policy.persistentCacheBytes == 4 * Self.mib)
    }

    @Test func nothingToGainMeansNoSqueeze() {
        var guest = SimulatedGuest(coldCacheMiB: 10)
        guest.residentFreeBytes = 6 * Self.mib
        var simulation = ReclaimSimulation(guest)
        simulation.run(for: .seconds(60))
        #expect(simulation.policy.counters.squeezes == 0)
        #expect(simulation.targets.isEmpty)
    }

    @Test func refetchingWhatItGaveUpBacksOffAndRaisesTheFloor() {
        var simulation = ReclaimSimulation(SimulatedGuest(coldCacheMiB: 256))
        var refetched = false
        simulation.run(for: .seconds(20)) { simulation in
            // Once the squeeze is over, the guest reads 40 MiB back (a major fault a page).
            if !refetched, simulation.policy.counters.cacheSqueezes == 1, simulation.policy.state == .idle {
                refetched = true
                simulation.guest.majorFaults += 10_240
                simulation.guest.coldCacheBytes += 40 * Self.mib
            }
        }
        #expect(refetched)
        #expect(simulation.policy.counters.backOffs[.refetch] == 1)
        #expect(simulation.policy.state == .backedOff)
        #expect(simulation.policy.floorBytes >= 48 * Self.mib, "floor \(simulation.policy.floorBytes / Self.mib) MiB")
        // Backed off, then the floor holds what was read back.
        simulation.run(for: .seconds(60))
        #expect(simulation.policy.counters.cacheSqueezes == 1)
        #expect(simulation.guest.coldCacheBytes + simulation.guest.hotCacheBytes == 48 * Self.mib)
    }

    /// The emulated host's idle scenario: the first squeeze takes a hot file too, the guest reads
    /// it back (a refetch: back off), and the squeeze left free pages the host still backs (the
    /// guest's reserves, refilled by its reclaim). A free-pages squeeze takes them during the
    /// back-off, and no cache with them.
    @Test func aRefetchBackOffStillLetsAFreePagesSqueezeTakeWhatTheHostBacks() throws {
        var simulation = ReclaimSimulation(SimulatedGuest(coldCacheMiB: 256))
        var refetchedAt: Duration?
        var cacheAtRefetch: UInt64 = 0
        simulation.run(for: .seconds(40)) { simulation in
            if refetchedAt == nil, simulation.policy.counters.squeezes == 1, simulation.policy.state == .idle {
                refetchedAt = simulation.guest.elapsed
                simulation.guest.majorFaults += 1024
                simulation.guest.hotCacheBytes += 4 * Self.mib
                simulation.guest.residentFreeBytes += 30 * Self.mib
                cacheAtRefetch = simulation.guest.coldCacheBytes + simulation.guest.hotCacheBytes
            }
        }
        let refetched = try #require(refetchedAt)
        #expect(simulation.policy.counters.backOffs[.refetch] == 1)
        #expect(simulation.policy.counters.squeezes == 2, "a free-pages squeeze during the back-off")
        #expect(simulation.guest.residentFreeBytes < 8 * Self.mib, "resident free \(simulation.guest.residentFreeBytes / Self.mib) MiB")
        #expect(simulation.guest.coldCacheBytes + simulation.guest.hotCacheBytes == cacheAtRefetch, "no cache taken while backed off")
        #expect(simulation.guest.balloonBytes == 0)
        #expect(simulation.guest.elapsed - refetched < .seconds(36), "still inside the back-off (30 s)")
        #expect(simulation.policy.state == .backedOff)
    }

    @Test func swapOutBacksOff() {
        var simulation = ReclaimSimulation(SimulatedGuest(coldCacheMiB: 0))
        simulation.run(for: .seconds(6))
        simulation.guest.swapOutBytes += 4096
        simulation.guest.coldCacheBytes = 200 * Self.mib
        simulation.run(for: .seconds(10))
        #expect(simulation.policy.counters.backOffs[.swap] == 1)
        #expect(simulation.policy.counters.squeezes == 0)
        #expect(simulation.policy.state == .backedOff)
    }

    @Test func anOOMKillStopsTheSqueezesForALongWhile() {
        var simulation = ReclaimSimulation(SimulatedGuest(coldCacheMiB: 0))
        simulation.run(for: .seconds(6))
        simulation.guest.oomKills = 1
        simulation.guest.coldCacheBytes = 200 * Self.mib
        simulation.run(for: .seconds(300))
        #expect(simulation.policy.state == .stopped)
        #expect(simulation.policy.counters.squeezes == 0)
        #expect(simulation.policy.counters.backOffs[.outOfMemory] == 1)
        simulation.run(for: .seconds(320))
        #expect(simulation.policy.counters.cacheSqueezes == 1, "squeezing again after the pause")
    }

    /// A squeeze for 600 MiB of cache that `event` interrupts once the balloon holds 64 MiB; 20 s.
    func squeezeInterrupted(by event: (inout SimulatedGuest) -> Void) -> ReclaimSimulation {
        var simulation = ReclaimSimulation(SimulatedGuest(coldCacheMiB: 600))
        simulation.guest.driverStepBytes = 16 << 20
        var interrupted = false
        simulation.run(for: .seconds(20)) { simulation in
            if !interrupted, simulation.policy.state == .squeezing, simulation.guest.balloonBytes >= 64 * Self.mib {
                interrupted = true
                event(&simulation.guest)
            }
        }
        #expect(interrupted)
        return simulation
    }

    @Test func theDriverDeflatingOnOOMInTheMiddleOfASqueezeEndsItAndStops() {
        let simulation = squeezeInterrupted { $0.deflate(1 << 20) }  // virtballoon_oom_notify gives 256 pages back
        #expect(simulation.policy.counters.aborts[.outOfMemory] == 1)
        #expect(simulation.policy.state == .stopped)
        #expect(simulation.guest.targetBytes == 0 && simulation.guest.balloonBytes == 0)
    }

    /// A guest that powers off in the middle of a squeeze resets the balloon: `actual` falls to
    /// nothing with no page deflated. That is no OOM.
    @Test func aDeviceResetInTheMiddleOfASqueezeEndsItWithoutStopping() {
        let simulation = squeezeInterrupted { $0.balloonBytes = 0 }
        #expect(simulation.policy.counters.aborts[.driverReset] == 1)
        #expect(simulation.policy.counters.aborts[.outOfMemory] == nil)
        #expect(simulation.policy.state != .stopped)
    }

    @Test func anInflationThatStallsEndsWhereItGotToAndBacksOff() {
        var guest = SimulatedGuest(coldCacheMiB: 256)
        guest.driverStepBytes = 0
        var simulation = ReclaimSimulation(guest)
        simulation.run(for: .seconds(15))
        #expect(simulation.policy.counters.squeezes == 1)
        #expect(simulation.policy.counters.aborts[.stalled] == 1)
        #expect(simulation.policy.counters.backOffs[.stall] == 1)
        #expect(simulation.targets.last == 0, "let go")
        simulation.run(for: .seconds(20))
        #expect(simulation.policy.counters.squeezes == 1, "no new squeeze while backed off")
    }

    @Test func aUserTargetWinsAndTheSqueezeNeverFightsIt() {
        var simulation = ReclaimSimulation(SimulatedGuest(coldCacheMiB: 300), userTarget: 128 * Self.mib)
        simulation.run(for: .seconds(30))
        #expect(simulation.policy.counters.squeezes == 0)
        #expect(simulation.targets.isEmpty)
        #expect(simulation.guest.balloonBytes == 128 * Self.mib)
        #expect(simulation.policy.state == .userTarget)

        // Back to 0: squeezes resume.
        simulation.setUserTarget(0)
        simulation.run(for: .seconds(30))
        #expect(simulation.policy.counters.cacheSqueezes == 1)
        #expect(simulation.guest.balloonBytes == 0)
    }

    @Test func aUserTargetSetDuringASqueezeEndsIt() {
        var simulation = ReclaimSimulation(SimulatedGuest(coldCacheMiB: 600))
        simulation.guest.driverStepBytes = 8 << 20
        simulation.run(for: .seconds(12)) { simulation in
            if simulation.policy.state == .squeezing, simulation.guest.balloonBytes >= 32 * Self.mib {
                simulation.setUserTarget(64 * Self.mib)
            }
        }
        #expect(simulation.policy.counters.aborts[.userTarget] == 1)
        #expect(simulation.guest.targetBytes == 64 * Self.mib)
        #expect(simulation.policy.state == .userTarget)
        let squeezes = simulation.policy.counters.squeezes
        simulation.run(for: .seconds(30))
        #expect(simulation.policy.counters.squeezes == squeezes)
        #expect(simulation.guest.balloonBytes == 64 * Self.mib)
    }

    @Test func staleStatisticsDecideNothing() {
        var policy = ReclaimPolicy(settings: ReclaimSimulation.settings, guestRAMBytes: 1 << 30)
        var guest = SimulatedGuest(coldCacheMiB: 500)
        guest.tick()
        // The same update twice, an interval apart: no fresh figures, no squeeze.
        #expect(policy.step(guest.observation(resident: true)) == nil)
        var later = guest.observation(resident: true)
        later.elapsed += .seconds(10)
        #expect(policy.step(later) == nil)
        #expect(policy.counters.squeezes == 0)
    }

    @Test func aGuestFaultingInAlreadyIsNotSqueezed() {
        var simulation = ReclaimSimulation(SimulatedGuest(coldCacheMiB: 300))
        simulation.run(for: .seconds(30)) { $0.guest.majorFaults += 100 }
        #expect(simulation.policy.counters.squeezes == 0)
    }

    @Test func theStatusLineNamesStateCountersAndReasons() {
        var counters = ReclaimCounters()
        counters.squeezes = 3
        counters.squeezedBytes = 250 << 20
        counters.aborts[.stalled] = 1
        counters.backOffs[.refetch] = 2
        let status = ReclaimStatus(state: .backedOff, counters: counters, floorBytes: 8 << 20, interval: .seconds(5))
        #expect(status.summary == "backed-off, 3 squeezes returned 250 MiB; ended early: stalled 1; backed off: refetch 2")
    }
}
