#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Firecracker's `PATCH /vm` `Paused`/`Resumed`: while a pause is asked for, each vCPU thread
/// parks between two exits (out of `KVM_RUN`, so the guest runs no instruction) until the resume.
/// A parked thread looks every millisecond: a pause is for seconds, not for a hot path.
final class PauseGate: Sendable {
    private struct State {
        var requested = false
        var parked = 0
    }

    private let state = Mutex(State())

    var isRequested: Bool { state.withLock { $0.requested } }
    var parkedCount: Int { state.withLock { $0.parked } }

    func request(paused: Bool) { state.withLock { $0.requested = paused } }

    /// On a vCPU thread between exits: returns at once unless a pause is asked for, else when it
    /// ends or `keepWaiting` says the machine stops.
    func parkIfRequested(keepWaiting: () -> Bool) {
        let parks = state.withLock { state -> Bool in
            guard state.requested else { return false }
            state.parked += 1
            return true
        }
        guard parks else { return }
        var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
        while isRequested && keepWaiting() { nanosleep(&pause, nil) }
        state.withLock { $0.parked -= 1 }
    }
}

/// Why a pause did not take.
public enum PauseError: Error, Equatable, CustomStringConvertible {
    case notRunning
    case timedOut(parked: Int, of: Int)

    public var description: String {
        switch self {
        case .notRunning: "the machine is not running"
        case let .timedOut(parked, count): "only \(parked) of \(count) vCPUs stopped within 5 s"
        }
    }
}

extension Machine {
    public var isPaused: Bool { pauseGate.isRequested }

    /// Stops every vCPU between two exits and returns once all are parked.
    public func pause() throws(PauseError) {
        guard !isStopping else { throw .notRunning }
        pauseGate.request(paused: true)
        let deadline = ContinuousClock.now + .seconds(5)
        var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
        while pauseGate.parkedCount < vcpus.count {
            guard !isStopping else { throw .notRunning }
            guard ContinuousClock.now < deadline else {
                // Left paused: the vCPUs not parked yet will park at their next exit.
                throw .timedOut(parked: pauseGate.parkedCount, of: vcpus.count)
            }
            // A kick the thread was not in KVM_RUN for is kept by immediate_exit; kick again
            // anyway, in case it was between its check and its next entry.
            kickVCPUs()
            nanosleep(&pause, nil)
        }
    }

    public func resume() { pauseGate.request(paused: false) }
}
