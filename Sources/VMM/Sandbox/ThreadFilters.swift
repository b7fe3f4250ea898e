#if canImport(Glibc)
import Glibc
#endif
import CKVM
import Seccomp

/// The system calls each kind of Ebb thread may make once its set-up is over: what the threads
/// were seen to call across the test suite, every device and the API in use (the kernel's log of
/// an `EBB_SECCOMP=log` run, listed by `scripts/seccomp-log`), and no more.
/// No list has `execve`, `fork`/`clone` (every thread is created before the guest runs), `socket`,
/// `ptrace`, or `open` with write or create flags; `ioctl` is allowed only for named requests.
enum ThreadFilters {
    /// One of each kind of role, for checking every list at start.
    static let everyRoleKind: [ThreadRole] = [
        .main, .vcpu(0), .device("any"), .api, .signalWatcher, .console, .memoryMonitor, .reclaimer, .metrics, .timers,
    ]

    static func rules(for role: ThreadRole, deviceCalls: [SyscallRule] = []) -> [SyscallRule] {
        everyThread + extra(for: role) + deviceCalls
    }

    private static func extra(for role: ThreadRole) -> [SyscallRule] {
        switch role {
        case .main: mainThread
        case .vcpu: vcpu
        case .device: deviceLoop
        case .api: api
        case .signalWatcher: signalWatcher
        case .console: console
        case .memoryMonitor: monitor
        case .reclaimer: reclaimer
        case .metrics: []
        case .timers: interrupts
        }
    }

    /// What the Swift runtime, glibc and Ebb's logging need on any thread: memory (never
    /// executable), locks, clocks, signals for kicks and the SIGSYS report, writing messages.
    static let everyThread: [SyscallRule] = [
        SyscallRule("mmap", .maskedEqual(argument: 2, mask: UInt64(PROT_EXEC), value: 0)),
        SyscallRule("mprotect", .maskedEqual(argument: 2, mask: UInt64(PROT_EXEC), value: 0)),
        SyscallRule("munmap"), SyscallRule("mremap"), SyscallRule("brk"),
        // glibc's free() trims with DONTNEED; the balloon discards with it.
        SyscallRule("madvise", .equal(argument: 2, to: UInt64(EBB_MADV_DONTNEED))),
        SyscallRule("futex"), SyscallRule("sched_yield"), SyscallRule("getrandom"),
        SyscallRule("clock_gettime"), SyscallRule("clock_nanosleep"), SyscallRule("nanosleep"), SyscallRule("gettimeofday"),
        SyscallRule("getpid"), SyscallRule("gettid"), SyscallRule("tgkill"),
        SyscallRule("rt_sigprocmask"), SyscallRule("rt_sigreturn"), SyscallRule("restart_syscall"),
        SyscallRule("read"), SyscallRule("write"), SyscallRule("writev"),
        SyscallRule("exit"), SyscallRule("exit_group"),
    ]

    /// Raising an interrupt line (the serial port, the keyboard, a device's config change).
    static let interrupts = SyscallRule.when("ioctl", argument: 1, isOneOf: [UInt64(EBB_KVM_IRQ_LINE)])

    /// Entering the guest and reading what it did; the register reads are for the fault report.
    static let vcpu = interrupts + SyscallRule.when("ioctl", argument: 1, isOneOf: [
        EBB_KVM_RUN, EBB_KVM_GET_REGS, EBB_KVM_SET_REGS, EBB_KVM_GET_SREGS, EBB_KVM_GET_VCPU_EVENTS,
        EBB_KVM_SET_VCPU_EVENTS, EBB_KVM_TRANSLATE, EBB_KVM_GET_LAPIC,
    ].map(UInt64.init))

    /// A device's event loop (epoll over its notifiers, its timer, its host descriptors); what the
    /// device itself calls comes from the device (`VirtioDevice.hostSystemCalls`).
    static let deviceLoop = interrupts + [SyscallRule("epoll_wait"), SyscallRule("epoll_pwait"), SyscallRule("close")]

    /// SwiftNIO's event loop serving the API socket, and the machine operations it drives. Closing
    /// the listening socket, NIO removes its file (`newfstatat`, `unlink`). PATCH /drives opens a
    /// disk's new image (an existing file, read-write, never created or truncated: `openat`,
    /// `lseek` for its size, `fcntl` for its lock); PATCH /balloon/statistics re-arms a timerfd.
    static let api = interrupts + [
        "epoll_wait", "epoll_pwait", "epoll_ctl", "accept4", "readv", "recvfrom", "recvmsg", "sendmsg", "sendto",
        "close", "shutdown", "getsockopt", "setsockopt", "getsockname", "getpeername", "fcntl", "timerfd_settime",
        "newfstatat", "fstat", "lseek", "unlink",
    ].map { SyscallRule($0) } + [
        SyscallRule("openat", .maskedEqual(argument: 2, mask: UInt64(O_CREAT | O_TRUNC | O_APPEND), value: 0)),
    ]

    static let signalWatcher = [SyscallRule("rt_sigtimedwait")]

    static let console = [SyscallRule("poll"), SyscallRule("ppoll")]

    /// Reading /proc (host memory, the guest's statistics files): opened read-only, never created.
    static let readOnlyOpen = [
        SyscallRule("openat", .maskedEqual(argument: 2, mask: UInt64(O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND), value: 0)),
        SyscallRule("close"), SyscallRule("pread64"), SyscallRule("lseek"), SyscallRule("fstat"), SyscallRule("newfstatat"),
    ]

    /// Reading this process's memory figures from /proc (the progress line's VmRSS).
    static let monitor = readOnlyOpen + interrupts

    /// The monitor's, guest RAM's resident size (`mincore`) and re-arming the balloon's statistics
    /// timer (fresh figures between the stages of a squeeze).
    static let reclaimer = monitor + [SyscallRule("mincore"), SyscallRule("timerfd_settime")]

    /// After the run: joining the threads, restoring the terminal, the summary, the last metrics.
    static let mainThread = monitor + [
        SyscallRule("mincore"), SyscallRule("unlink"), SyscallRule("unlinkat"), SyscallRule("epoll_ctl"),
    ] + SyscallRule.when("ioctl", argument: 1, isOneOf: [UInt64(TCGETS), UInt64(TCSETS), UInt64(TCSETSW), UInt64(TCSETSF)])
}
