#if canImport(Glibc)
import Glibc
#endif

/// Turns SIGINT, SIGTERM and SIGHUP into an orderly stop: the signals are blocked in every thread
/// and one thread waits for them with `sigwait`, so no work happens in a signal handler.
public final class HostSignalWatcher: @unchecked Sendable {
    static let watched = [SIGINT, SIGTERM, SIGHUP]
    /// Sent by `stop()` to end the waiting thread.
    static let wakeSignal = SIGUSR2

    private var thread: OSThread?
    private var previousMask = sigset_t()

    static var watchedSet: sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for number in watched + [wakeSignal] { sigaddset(&set, number) }
        return set
    }

    /// Blocks the watched signals in the calling thread, and so in every thread it starts from now
    /// on. Call it before starting helper threads (an API server, a monitor): a thread that does
    /// not block them would take SIGTERM's default action and end the process unannounced.
    public static func blockWatchedSignals() {
        var set = watchedSet
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    init(onSignal: @escaping @Sendable (Int32) -> Void) throws {
        var set = Self.watchedSet
        // Block before any vCPU thread starts, so every thread inherits the mask.
        pthread_sigmask(SIG_BLOCK, &set, &previousMask)
        let waitSet = set
        thread = try OSThread(name: "ebb-signals", role: .signalWatcher) {
            Sandbox.confineThisThread(as: .signalWatcher)
            var set = waitSet
            while true {
                var number: Int32 = 0
                guard sigwait(&set, &number) == 0 else { continue }
                if number == Self.wakeSignal { return }
                onSignal(number)
            }
        }
    }

    func stop() {
        thread?.signal(Self.wakeSignal)
        thread?.join()
        thread = nil
        pthread_sigmask(SIG_SETMASK, &previousMask, nil)
    }
}
