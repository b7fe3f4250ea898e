#if canImport(Glibc)
import Glibc
#endif

/// Turns SIGINT, SIGTERM and SIGHUP into an orderly stop: the signals are blocked in every thread
/// and one thread waits for them with `sigwait`, so no work happens in a signal handler.
final class HostSignalWatcher: @unchecked Sendable {
    static let watched = [SIGINT, SIGTERM, SIGHUP]
    /// Sent by `stop()` to end the waiting thread.
    static let wakeSignal = SIGUSR2

    private var thread: OSThread?
    private var previousMask = sigset_t()

    init(onSignal: @escaping @Sendable (Int32) -> Void) throws {
        var set = sigset_t()
        sigemptyset(&set)
        for number in Self.watched + [Self.wakeSignal] { sigaddset(&set, number) }
        // Block before any thread starts, so every thread inherits the mask.
        pthread_sigmask(SIG_BLOCK, &set, &previousMask)
        let waitSet = set
        thread = try OSThread(name: "ebb-signals") {
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
