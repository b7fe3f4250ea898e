#if canImport(Glibc)
import Glibc
#endif
import CKVM
import Seccomp
import Synchronization
import Testing
@testable import VMM

/// Each list applied for real, on a thread of its own (a filter binds only the thread that loads
/// it), with refused calls failing with EPERM instead of stopping the test process. A call the
/// filter lets through reaches the kernel and fails there for its own reason (EBADF on fd -1), so
/// the errno tells which of the two answered.
@Suite struct ThreadFilterTests {
    /// Runs `body` on a new thread confined to `rules`; returns what it returned.
    private func confined<T: Sendable>(_ rules: [SyscallRule], _ body: @escaping @Sendable () -> T) throws -> T {
        let result = Mutex<T?>(nil)
        let installed = Mutex<SeccompError?>(nil)
        let thread = try OSThread(name: "ebb-test-seccomp", role: .main) {
            do throws(SeccompError) { try SeccompFilter(rules: rules, refusal: .fail(errno: EPERM)).install() } catch {
                installed.withLock { $0 = error }
                return
            }
            let value = body()
            result.withLock { $0 = value }
        }
        thread.join()
        if let error = installed.withLock({ $0 }) { throw error }
        return try #require(result.withLock { $0 })
    }

    /// errno after `call` returned -1, or 0 if it succeeded.
    private static func errnoOf(_ call: () -> Int) -> Int32 {
        errno = 0
        return call() == -1 ? errno : 0
    }

    @Test(arguments: ThreadFilters.everyRoleKind)
    func everyListCompilesAndLoads(role: ThreadRole) throws {
        let pid = try confined(ThreadFilters.rules(for: role)) { Int(getpid()) }
        #expect(pid == Int(getpid()))
    }

    @Test(arguments: ThreadFilters.everyRoleKind)
    func noListStartsProgramsOrThreadsOrOpensSockets(role: ThreadRole) {
        let names = Set(ThreadFilters.rules(for: role).map(\.name))
        for forbidden in ["execve", "execveat", "fork", "vfork", "clone", "clone3", "socket", "ptrace", "process_vm_writev", "mount"] {
            #expect(!names.contains(forbidden), "\(role) may call \(forbidden)")
        }
    }

    @Test func aVCPUMayRunTheGuestButNotMapMemoryIntoIt() throws {
        let (run, mapMemory, terminal) = try confined(ThreadFilters.rules(for: .vcpu(0))) {
            (Self.errnoOf { Int(ebb_ioctl_none(-1, EBB_KVM_RUN)) },
             Self.errnoOf { Int(ebb_ioctl_none(-1, EBB_KVM_SET_USER_MEMORY_REGION)) },
             Self.errnoOf { Int(ebb_ioctl_none(-1, UInt(TCGETS))) })
        }
        #expect(run == EBADF, "KVM_RUN reaches the kernel")
        #expect(mapMemory == EPERM, "KVM_SET_USER_MEMORY_REGION is refused")
        #expect(terminal == EPERM, "a vCPU has no business with the terminal")
    }

    @Test func aVCPUOpensNothing() throws {
        let opened = try confined(ThreadFilters.rules(for: .vcpu(0))) {
            Self.errnoOf { Int(open("/proc/self/status", O_RDONLY | O_CLOEXEC)) }
        }
        #expect(opened == EPERM)
    }

    @Test func theMonitorOpensForReadingOnly() throws {
        let (reading, writing, creating) = try confined(ThreadFilters.rules(for: .memoryMonitor)) {
            var descriptor: Int32 = -1
            let reading = Self.errnoOf {
                descriptor = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
                return Int(descriptor)
            }
            if descriptor >= 0 { close(descriptor) }
            return (reading,
                    Self.errnoOf { Int(open("/proc/self/statm", O_WRONLY | O_CLOEXEC)) },
                    Self.errnoOf { Int(open("/tmp/ebb-seccomp-test", O_RDONLY | O_CREAT | O_CLOEXEC, 0o600)) })
        }
        #expect(reading == 0)
        #expect(writing == EPERM)
        #expect(creating == EPERM)
    }

    @Test func noThreadMapsExecutableMemoryOrAsksForOtherAdvice() throws {
        let (executable, plain, hugePages, discard) = try confined(ThreadFilters.rules(for: .device("test"))) {
            let executable = mmap(nil, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            let plain = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            let hugePages = Self.errnoOf { Int(madvise(plain, 4096, EBB_MADV_HUGEPAGE)) }
            let discard = Self.errnoOf { Int(madvise(plain, 4096, EBB_MADV_DONTNEED)) }
            if let plain, plain != MAP_FAILED { munmap(plain, 4096) }
            return (executable == MAP_FAILED, plain != MAP_FAILED, hugePages, discard)
        }
        #expect(executable, "PROT_EXEC is refused")
        #expect(plain)
        #expect(hugePages == EPERM)
        #expect(discard == 0)
    }

    @Test func aDeviceGetsItsOwnCallsOnTopOfTheLoops() throws {
        let rule = SyscallRule("readv")
        let (without, with) = (
            try confined(ThreadFilters.rules(for: .device("net"))) { Self.errnoOf { Glibc.readv(-1, nil, 0) } },
            try confined(ThreadFilters.rules(for: .device("net"), deviceCalls: [rule])) { Self.errnoOf { Glibc.readv(-1, nil, 0) } })
        #expect(without == EPERM)
        #expect(with == EBADF)
    }

    @Test func aNameLibseccompDoesNotKnowIsAnError() {
        #expect(throws: SeccompError.unknownSystemCall("no_such_call")) {
            try SeccompFilter(rules: [SyscallRule("no_such_call")]).compileOnly()
        }
    }
}
