import Synchronization

/// How much the guest can make Ebb print. A driver that breaks its device and resets it in a loop
/// costs Ebb a "needs reset" and a "driver ready" line each time round: unbounded, a hostile guest
/// fills the host's log as fast as it can loop. The bound is the one Linux puts on its own kernel
/// messages (`printk_ratelimit`: 10 lines per 5 s).
public enum GuestReportLimits {
    public static let burst = 10
    public static let interval: Duration = .seconds(5)
}

/// Lets `burst` lines through in each window of `interval`, the first line after a window opening
/// it; counts the rest, to be said when the next window opens (or at exit).
public struct ReportRateLimiter: Sendable, Equatable {
    public enum Verdict: Sendable, Equatable {
        /// Print the line, after saying that `heldBack` lines before it were not.
        case print(heldBack: Int)
        case holdBack
    }

    public let burst: Int
    public let interval: Duration
    private var windowStart: Duration?
    private var printed = 0
    /// Lines held back and not yet said so.
    public private(set) var heldBack = 0

    public init(burst: Int = GuestReportLimits.burst, interval: Duration = GuestReportLimits.interval) {
        self.burst = burst
        self.interval = interval
    }

    /// Whether a line that comes at `now` (any monotonic clock) is printed.
    public mutating func admit(at now: Duration) -> Verdict {
        if let start = windowStart, now - start < interval {
            guard printed < burst else {
                heldBack += 1
                return .holdBack
            }
            printed += 1
            return .print(heldBack: 0)
        }
        windowStart = now
        printed = 1
        defer { heldBack = 0 }
        return .print(heldBack: heldBack)
    }

    /// The lines held back since they were last said, now said.
    public mutating func takeHeldBack() -> Int {
        defer { heldBack = 0 }
        return heldBack
    }
}

private let guestReportLimiter = Mutex(ReportRateLimiter())
private let guestReportClock = ContinuousClock.now

/// `report` for a line the guest's doing causes (a device it broke, a driver it started): at most
/// `GuestReportLimits.burst` per `GuestReportLimits.interval`, the rest counted.
public func reportFromGuest(_ message: String, level: LogLevel = .info, file: String = #fileID, line: Int = #line) {
    let verdict = guestReportLimiter.withLock { $0.admit(at: ContinuousClock.now - guestReportClock) }
    guard case .print(let heldBack) = verdict else { return }
    if heldBack > 0 { report(heldBackLine(heldBack), level: .warning) }
    report(message, level: level, file: file, line: line)
}

/// Says how many of the guest's lines were held back since last said (at exit).
public func reportHeldBackGuestLines() {
    let heldBack = guestReportLimiter.withLock { $0.takeHeldBack() }
    if heldBack > 0 { report(heldBackLine(heldBack), level: .warning) }
}

func heldBackLine(_ count: Int) -> String {
    let seconds = GuestReportLimits.interval.components.seconds
    return "\(count) more line\(count == 1 ? "" : "s") the guest caused not printed (at most \(GuestReportLimits.burst) per \(seconds) s)"
}
