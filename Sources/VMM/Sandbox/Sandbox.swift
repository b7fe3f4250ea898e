#if canImport(Glibc)
import Glibc
#endif
import Seccomp
import Synchronization

/// Ebb's seccomp confinement: each thread, once its set-up is over, calls `confineThisThread(as:)`
/// and from then on may make only the system calls of its role's list (`ThreadFilters`); a call
/// outside it ends Ebb with one line naming it and status 148 (`SeccompReporter`). Off until the
/// front end enables it (`--seccomp on`, the default), so tests of the modules run unconfined.
public enum Sandbox {
    /// `--seccomp`: off, on (a refused call stops Ebb), or log (refused calls go through and the
    /// kernel logs them, to find what a list lacks).
    public enum Mode: UInt8, Sendable { case off, on, log }

    private static let current = Atomic<UInt8>(Mode.off.rawValue)
    /// System calls taken out of every list: `EBB_SECCOMP_DENY=mincore,...`, for the test that a
    /// refused call really stops Ebb (a list Ebb ships has nothing a run can be made to miss).
    private static let denied = Mutex<Set<String>>([])

    public static var mode: Mode { Mode(rawValue: current.load(ordering: .acquiring)) ?? .off }
    public static var isEnabled: Bool { mode != .off }

    /// Checks that every role's list compiles, catches SIGSYS, and turns confinement on for the
    /// threads that start from now on.
    public static func enable(_ mode: Mode = .on) throws(SeccompError) {
        guard mode != .off else { return }
        for role in ThreadFilters.everyRoleKind {
            try SeccompFilter(rules: ThreadFilters.rules(for: role)).compileOnly()
        }
        if let names = getenv("EBB_SECCOMP_DENY").map({ String(cString: $0) }) {
            denied.withLock { $0 = Set(names.split(separator: ",").map(String.init)) }
        }
        try SeccompReporter.install()
        current.store(mode.rawValue, ordering: .releasing)
    }

    /// Confines the calling thread to `role`'s list when confinement is on. A filter the kernel
    /// refuses ends Ebb: running unconfined when the user asked for confinement is not an option.
    /// `deviceCalls`: the calls of the devices whose code the thread runs (`VirtioDevice.hostSystemCalls`).
    public static func confineThisThread(as role: ThreadRole, deviceCalls: [SyscallRule] = []) {
        guard isEnabled else { return }
        SeccompReporter.nameThisThread(role.description)
        do {
            let refused = denied.withLock { $0 }
            let rules = ThreadFilters.rules(for: role, deviceCalls: deviceCalls).filter { !refused.contains($0.name) }
            try SeccompFilter(rules: rules, refusal: mode == .log ? .log : .trap).install()
        } catch {
            report("cannot confine the \(role) thread: \(error) (--seccomp off runs without filters)", level: .error)
            exit(1)
        }
    }
}
