#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Samples this process's resident memory at a fixed interval on its own thread, keeping the peak
/// and handing each sample to `onSample` (the CLI's progress line).
public final class MemoryMonitor: @unchecked Sendable {
    public struct Sample: Sendable {
        public let residentBytes: UInt64
        public let peakResidentBytes: UInt64
        public let elapsed: Duration
    }

    private let interval: Duration
    private let onSample: @Sendable (Sample) -> Void
    private let running = Atomic<Bool>(false)
    private var thread: OSThread?

    public init(interval: Duration, onSample: @escaping @Sendable (Sample) -> Void) {
        self.interval = interval
        self.onSample = onSample
    }

    public func start() throws {
        running.store(true, ordering: .releasing)
        // The thread holds the monitor until `stop()` joins it.
        thread = try OSThread(name: "ebb-memmon", role: .memoryMonitor) { [self] in
            Sandbox.confineThisThread(as: .memoryMonitor)
            let started = ContinuousClock.now
            let (seconds, attoseconds) = interval.components
            var peak: UInt64 = 0
            while running.load(ordering: .acquiring) {
                let resident = currentResidentBytes()
                peak = max(peak, resident)
                onSample(Sample(residentBytes: resident, peakResidentBytes: peak, elapsed: ContinuousClock.now - started))
                var pause = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
                nanosleep(&pause, nil)
            }
        }
    }

    public func stop() {
        running.store(false, ordering: .releasing)
        thread?.join()
        thread = nil
    }
}

/// VmRSS from /proc/self/statm (cheap enough to read every few milliseconds).
public func currentResidentBytes() -> UInt64 {
    let fields = readProcFile("/proc/self/statm").split(separator: " ")
    guard fields.count > 1, let pages = UInt64(fields[1]) else { return 0 }
    return pages * UInt64(sysconf(Int32(_SC_PAGESIZE)))
}
