#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Runs a `ReclaimPolicy` against a running machine on a thread of its own: every tick it
/// gathers the policy's signals and applies the balloon target the policy answers. A target
/// the user sets goes through here too, so that it and a squeeze never race.
final class IdleReclaimer: @unchecked Sendable {
    /// Often enough to follow a squeeze's `actual`; the policy itself decides once an interval.
    static let tick: Duration = .milliseconds(250)

    private let policy: Mutex<ReclaimPolicy>
    private unowned let machine: Machine
    private let running = Atomic<Bool>(false)
    private var thread: OSThread?
    private let clockStart = ContinuousClock.now

    init(machine: Machine, settings: ReclaimSettings, userTargetBytes: UInt64) {
        self.machine = machine
        policy = Mutex(ReclaimPolicy(settings: settings, guestRAMBytes: machine.configuration.memoryBytes,
                                     userTargetBytes: userTargetBytes))
    }

    private var elapsed: Duration { ContinuousClock.now - clockStart }

    func start() throws {
        running.store(true, ordering: .releasing)
        thread = try OSThread(name: "ebb-reclaim", role: .reclaimer) { [self] in
            Sandbox.confineThisThread(as: .reclaimer)
            let (seconds, attoseconds) = Self.tick.components
            while running.load(ordering: .acquiring) {
                stepOnce()
                var pause = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
                nanosleep(&pause, nil)
            }
        }
    }

    func stop() {
        running.store(false, ordering: .releasing)
        thread?.join()
        thread = nil
    }

    /// The policy's lock is taken before any device's, here and in `setUserTarget`.
    private func stepOnce() {
        // A paused guest can follow no target: squeezing it would only stall.
        guard !machine.isPaused else { return }
        policy.withLock { policy in
            let now = elapsed
            guard let observation = machine.reclaimObservation(elapsed: now, sampleCostly: policy.wantsCostlySample(at: now)) else { return }
            let stateBefore = policy.state
            let target = policy.step(observation)
            if target != nil || policy.state != stateBefore {
                debugLog("reclaim: \(Self.describe(stateBefore, policy.state, target, observation))")
            }
            if let target { machine.applyBalloonTarget(bytes: target) }
            if policy.takeStatisticsRequest() { machine.requestBalloonStatisticsNow() }
        }
    }

    /// "idle -> squeezing, target 700 MiB; at 25.31 s: actual 0 free 690 available 950 cache 262
    /// resident 360 (MiB)": a decision and what it was made on, for the debug log.
    private static func describe(_ before: ReclaimPolicy.State, _ after: ReclaimPolicy.State, _ target: UInt64?,
                                 _ observation: ReclaimObservation) -> String {
        func mib(_ bytes: UInt64?) -> String { bytes.map { "\($0 >> 20)" } ?? "-" }
        let (seconds, attoseconds) = observation.elapsed.components
        let hundredths = attoseconds / 10_000_000_000_000_000
        let statistics = observation.statistics
        return (before == after ? after.rawValue : "\(before.rawValue) -> \(after.rawValue)")
            + (target.map { ", target \(mib($0)) MiB" } ?? "")
            + "; at \(seconds).\(hundredths < 10 ? "0" : "")\(hundredths) s: actual \(mib(observation.balloonActualBytes))"
            + " free \(mib(statistics?.freeBytes)) available \(mib(statistics?.availableBytes))"
            + " cache \(mib(statistics?.cacheBytes)) resident \(mib(observation.residentBytes)) (MiB)"
    }

    func setUserTarget(bytes: UInt64) {
        policy.withLock { policy in
            policy.userTargetChanged(to: bytes, at: elapsed)
            machine.applyBalloonTarget(bytes: bytes)
        }
    }

    var status: ReclaimStatus {
        policy.withLock { ReclaimStatus(state: $0.state, counters: $0.counters, floorBytes: $0.floorBytes, interval: $0.settings.interval, busyShare: $0.lastBusyShare) }
    }
}

/// The reclaim policy's state and counters, for the progress line, the summary and the API.
public struct ReclaimStatus: Sendable, Equatable {
    public let state: ReclaimPolicy.State
    public let counters: ReclaimCounters
    public let floorBytes: UInt64
    public let interval: Duration
    /// The vCPUs' busy share over the last interval, when known.
    public let busyShare: Double?

    public init(state: ReclaimPolicy.State, counters: ReclaimCounters, floorBytes: UInt64, interval: Duration, busyShare: Double? = nil) {
        self.state = state
        self.counters = counters
        self.floorBytes = floorBytes
        self.interval = interval
        self.busyShare = busyShare
    }

    /// "busy (vCPUs 40% busy), 3 squeezes returned 250 MiB" and, when there were any, the aborts and back-offs.
    public var summary: String {
        let share = busyShare.map { " (vCPUs \(Int(($0 * 100).rounded()))% busy)" } ?? ""
        var line = "\(state.rawValue)\(share), \(counters.squeezes) squeeze\(counters.squeezes == 1 ? "" : "s") returned \(formatBytes(counters.squeezedBytes))"
        let aborts = ReclaimPolicy.Abort.allCases.compactMap { reason in counters.aborts[reason].map { "\(reason.rawValue) \($0)" } }
        if !aborts.isEmpty { line += "; ended early: \(aborts.joined(separator: ", "))" }
        let backOffs = ReclaimPolicy.BackOff.allCases.compactMap { reason in counters.backOffs[reason].map { "\(reason.rawValue) \($0)" } }
        if !backOffs.isEmpty { line += "; backed off: \(backOffs.joined(separator: ", "))" }
        return line
    }
}
