#if canImport(Glibc)
import Glibc
#endif
import CKVM

/// A joinable OS thread running a Swift closure. vCPUs need real threads (a blocking `KVM_RUN`
/// must not hold a Swift concurrency thread) that can be signalled with `pthread_kill`.
final class OSThread: @unchecked Sendable {
    private var handle = pthread_t()
    private final class Box { let body: @Sendable () -> Void; init(_ body: @escaping @Sendable () -> Void) { self.body = body } }

    init(name: String, _ body: @escaping @Sendable () -> Void) throws {
        // Thread names help `top -H` and debuggers.
        let named: @Sendable () -> Void = { _ = ebb_set_thread_name(name); body() }
        let box = Unmanaged.passRetained(Box(named)).toOpaque()
        let result = pthread_create(&handle, nil, { argument in
            guard let argument else { return nil }
            let box = Unmanaged<Box>.fromOpaque(argument).takeRetainedValue()
            box.body()
            return nil
        }, box)
        guard result == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw SystemError(operation: "pthread_create(\(name))", errno: result)
        }
    }

    /// Interrupts a blocking system call in the thread (KVM_RUN returns EINTR).
    func signal(_ number: Int32) { pthread_kill(handle, number) }

    func join() { pthread_join(handle, nil) }
}

/// A failed system call outside KVM, with errno.
public struct SystemError: Error, CustomStringConvertible {
    public let operation: String
    public let errno: Int32
    public var description: String { "\(operation) failed: \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// The signal that kicks a vCPU thread out of `KVM_RUN`. Its handler does nothing: the point is
/// the EINTR. Installed without SA_RESTART so the ioctl is not restarted.
enum VCPUKick {
    static let signal = SIGUSR1

    static func install() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(signal, &action, nil)
    }

    /// Called on each vCPU thread: a parent process may have left the signal blocked, and a
    /// blocked kick would never interrupt `KVM_RUN`.
    static func unblockOnThisThread() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, signal)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}
