#if canImport(Glibc)
import Glibc
#endif
import Devices

/// One thread that runs devices' delayed work (`DelayedCalls`) at its deadline. Started with the
/// machine, before the guest runs, so that no vCPU thread ever creates a thread (its seccomp filter
/// refuses `clone`); the work itself is small (the i8042's interrupt).
final class TimerThread: DelayedCalls, @unchecked Sendable {
    private struct Entry {
        let deadline: UInt64
        let work: @Sendable () -> Void
    }

    // A condition variable on CLOCK_MONOTONIC: Swift's Mutex has no timed wait.
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var pending: [Entry] = []
    private var stopping = false
    private var thread: OSThread?

    /// Pending calls beyond this are dropped: a guest cannot make Ebb queue without bound (the
    /// i8042 keeps at most one chain of retries per byte it holds).
    static let maximumPending = 256

    init() {
        pthread_mutex_init(lock, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(wake, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(wake)
        pthread_mutex_destroy(lock)
        wake.deallocate()
        lock.deallocate()
    }

    func start() throws {
        thread = try OSThread(name: "ebb-timers", role: .timers) { [self] in
            Sandbox.confineThisThread(as: .timers)
            serve()
        }
    }

    func stop() {
        pthread_mutex_lock(lock)
        stopping = true
        pthread_cond_signal(wake)
        pthread_mutex_unlock(lock)
        thread?.join()
        thread = nil
    }

    func call(after delay: Duration, _ work: @escaping @Sendable () -> Void) {
        let (seconds, attoseconds) = delay.components
        let deadline = Self.now() + UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
        pthread_mutex_lock(lock)
        if pending.count < Self.maximumPending {
            pending.append(Entry(deadline: deadline, work: work))
            pthread_cond_signal(wake)
        }
        pthread_mutex_unlock(lock)
    }

    private func serve() {
        pthread_mutex_lock(lock)
        while !stopping {
            guard let soonest = pending.indices.min(by: { pending[$0].deadline < pending[$1].deadline }) else {
                pthread_cond_wait(wake, lock)
                continue
            }
            let deadline = pending[soonest].deadline
            if Self.now() >= deadline {
                let entry = pending.remove(at: soonest)
                // The work runs unlocked: it may ask for another call.
                pthread_mutex_unlock(lock)
                entry.work()
                pthread_mutex_lock(lock)
                continue
            }
            var until = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
            pthread_cond_timedwait(wake, lock, &until)
        }
        pthread_mutex_unlock(lock)
    }

    private static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}
