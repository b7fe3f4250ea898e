import Dispatch
import Synchronization
import VMM

/// Firecracker's metrics: once configured (`PUT /metrics`, a config file's "metrics", or
/// `--metrics-path`), a JSON line every 60 seconds, on `FlushMetrics`, and when Ebb ends, each
/// with what the counters gained since the line before.
public final class MetricsWriter: Sendable {
    public static let period: Duration = .seconds(60)

    private struct State {
        var file: OutputFile?
        var previous: [String: UInt64] = [:]
        /// Lines that could not be written whole (Firecracker's `logger.metrics_fails`); what they
        /// held is carried into the next line, as the deltas start from the last line written.
        var failed: UInt64 = 0
        var thread: OSThread?
        var stopping = false
    }

    private let control: ControlPlane
    private let requests: APIRequestCounters
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)

    public init(control: ControlPlane, requests: APIRequestCounters) {
        self.control = control
        self.requests = requests
    }

    public var path: String? { state.withLock { $0.file?.path } }

    /// Opens the destination and starts the minute's timer; only once, as Firecracker allows.
    public func configure(path: String) throws(MetricsError) {
        let file: OutputFile
        do { file = try OutputFile(path: path) } catch { throw .cannotOpen(error) }
        try state.withLock { state throws(MetricsError) in
            guard state.file == nil else { throw .alreadyConfigured }
            state.file = file
        }
        do {
            let thread = try OSThread(name: "ebb-metrics", role: .metrics) { [self] in
                Sandbox.confineThisThread(as: .metrics)
                while true {
                    let woken = wake.wait(timeout: .now() + .seconds(Int(Self.period.components.seconds))) == .success
                    if isStopping { break }
                    if !woken { flush() }
                }
            }
            state.withLock { $0.thread = thread }
        } catch {
            report("metrics: no timer thread (\(error)); lines are written on FlushMetrics and at exit only", level: .warning)
        }
    }

    private var isStopping: Bool { state.withLock { $0.stopping } }

    /// Writes one line now; false when metrics are not configured.
    @discardableResult
    public func flush() -> Bool {
        state.withLock { state in
            guard let file = state.file else { return false }
            let line = MetricsLine.gather(control: control, requests: requests, failedMetrics: state.failed)
            if file.write(line: line.since(state.previous).json) {
                state.previous = line.cumulative
            } else {
                state.failed += 1
            }
            return true
        }
    }

    /// Writes the last line and ends the timer.
    public func stop() {
        let thread = state.withLock { state -> OSThread? in
            state.stopping = true
            defer { state.thread = nil }
            return state.thread
        }
        wake.signal()
        thread?.join()
        flush()
    }
}

public enum MetricsError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(OutputFileError)
    case alreadyConfigured

    public var description: String {
        switch self {
        case let .cannotOpen(error): "metrics: \(error)"
        case .alreadyConfigured: "metrics are already configured"
        }
    }
}
