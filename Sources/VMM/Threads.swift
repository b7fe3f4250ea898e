#if canImport(Glibc)
import Glibc
#endif
import CKVM
import Synchronization

/// What an Ebb thread is for: a seccomp filter and the accounting of CPU time go by role.
public enum ThreadRole: Sendable, Hashable, CustomStringConvertible {
    case main
    case vcpu(UInt32)
    /// A device's event thread, by device name.
    case device(String)
    /// The control API's event loop.
    case api
    /// Host signals (SIGINT, SIGTERM, SIGHUP) turned into an orderly stop.
    case signalWatcher
    /// The terminal to the guest's serial port.
    case console
    /// Samples host memory for the progress lines.
    case memoryMonitor
    /// The agentless reclaim's policy loop (`IdleReclaimer`).
    case reclaimer
    /// Writes a metrics line every minute (Firecracker's metrics).
    case metrics
    /// Devices' delayed work (`TimerThread`).
    case timers

    public var description: String {
        switch self {
        case .main: "main"
        case let .vcpu(id): "vcpu\(id)"
        case let .device(name): "device \(name)"
        case .api: "api"
        case .signalWatcher: "signals"
        case .console: "console"
        case .memoryMonitor: "memory monitor"
        case .reclaimer: "reclaimer"
        case .metrics: "metrics"
        case .timers: "timers"
        }
    }
}

/// Every Ebb thread that said what it is for, with its kernel thread id.
public enum ThreadRegistry {
    public struct Entry: Sendable, Equatable {
        public let role: ThreadRole
        public let threadID: Int32
    }

    private static let entries = Mutex<[Entry]>([])

    /// Records the calling thread under `role`.
    public static func registerCurrentThread(as role: ThreadRole) {
        let entry = Entry(role: role, threadID: ebb_gettid())
        entries.withLock { $0.append(entry) }
    }

    public static func unregisterCurrentThread() {
        let id = ebb_gettid()
        entries.withLock { $0.removeAll { $0.threadID == id } }
    }

    public static var threads: [Entry] { entries.withLock { $0 } }

    /// CPU time a thread of this process has used, or nil once it is gone.
    public static func cpuTime(threadID: Int32) -> Duration? {
        let nanoseconds = ebb_thread_cpu_nanoseconds(threadID)
        return nanoseconds < 0 ? nil : .nanoseconds(nanoseconds)
    }
}

/// A joinable OS thread running a Swift closure. vCPUs need real threads (a blocking `KVM_RUN`
/// must not hold a Swift concurrency thread) that can be signalled with `pthread_kill`.
public final class OSThread: @unchecked Sendable {
    private var handle = pthread_t()
    let role: ThreadRole
    private final class Box { let body: @Sendable () -> Void; init(_ body: @escaping @Sendable () -> Void) { self.body = body } }

    public init(name: String, role: ThreadRole, _ body: @escaping @Sendable () -> Void) throws {
        self.role = role
        // Thread names help `top -H` and debuggers.
        let named: @Sendable () -> Void = {
            _ = ebb_set_thread_name(name)
            ThreadRegistry.registerCurrentThread(as: role)
            body()
            ThreadRegistry.unregisterCurrentThread()
        }
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

    public func join() { pthread_join(handle, nil) }
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
