import Synchronization
import VMM

/// The demo's progress: a line on stderr each time host RSS moves by 32 MiB or more, with what
/// the guest has reported, so a person sees memory go out to the guest and come back.
final class MemoryProgress: Sendable {
    static let stepBytes: UInt64 = 32 << 20
    private let monitor: MemoryMonitor

    init(machine: Machine) {
        let lastPrinted = Mutex<UInt64>(0)
        monitor = MemoryMonitor(interval: .milliseconds(100)) { sample in
            let changed = lastPrinted.withLock { last -> Bool in
                let delta = sample.residentBytes > last ? sample.residentBytes - last : last - sample.residentBytes
                guard delta >= Self.stepBytes else { return false }
                last = sample.residentBytes
                return true
            }
            guard changed else { return }
            var reported = machine.balloonCounters.map { ", guest reported \(formatBytes($0.reportedBytes)) free" } ?? ""
            // The agentless reclaim, once it has done something.
            if let reclaim = machine.reclaimStatus, reclaim.counters.squeezes > 0 || reclaim.state == .squeezing {
                reported += "; reclaim \(reclaim.summary)"
            }
            let tenths = sample.elapsed.components.seconds * 10 + sample.elapsed.components.attoseconds / 100_000_000_000_000_000
            report("t=\(tenths / 10).\(tenths % 10)s host RSS \(formatBytes(sample.residentBytes)) (peak \(formatBytes(sample.peakResidentBytes)))\(reported)")
        }
    }

    func start() throws { try monitor.start() }
    func stop() { monitor.stop() }
}
