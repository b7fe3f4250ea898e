import Foundation
import Synchronization

/// Samples another process's VmRSS from /proc/<pid>/status every `interval`, as an operator
/// watching the host would, until stopped.
final class RSSSampler: @unchecked Sendable {
    struct Sample { let at: Date; let residentBytes: UInt64 }

    private let samples = Mutex<[Sample]>([])
    private let running = Atomic<Bool>(true)
    private var thread: Thread?

    init(pid: Int32, interval: TimeInterval = 0.02) {
        let thread = Thread { [self] in
            while running.load(ordering: .relaxed) {
                guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { break }
                if let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                   let kilobytes = UInt64(line.split(whereSeparator: { $0 == " " || $0 == "\t" })[1]) {
                    samples.withLock { $0.append(Sample(at: Date(), residentBytes: kilobytes * 1024)) }
                }
                Thread.sleep(forTimeInterval: interval)
            }
        }
        self.thread = thread
        thread.start()
    }

    var samplesSoFar: [Sample] { samples.withLock { $0 } }

    func stop() -> [Sample] {
        running.store(false, ordering: .relaxed)
        Thread.sleep(forTimeInterval: 0.05)
        return samples.withLock { $0 }
    }

    static func peak(_ samples: [Sample]) -> UInt64 { samples.map(\.residentBytes).max() ?? 0 }
}

let mebibyte: UInt64 = 1 << 20
