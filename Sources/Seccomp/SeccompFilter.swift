#if canImport(Glibc)
import Glibc
#endif
import CSeccomp

/// A seccomp-bpf allow-list compiled by libseccomp: every system call not in `rules` is refused.
/// `install()` confines the calling thread only (no TSYNC): each Ebb thread installs the list of
/// its role once its set-up is over, and threads it creates afterwards inherit it.
public struct SeccompFilter: Sendable {
    /// What a refused call does.
    public enum Refusal: Sendable, Equatable {
        /// SIGSYS, which `SeccompReporter` turns into one line and an exit with its status.
        case trap
        /// The call fails with this errno and the thread goes on (for tests of a list).
        case fail(errno: Int32)
        /// The call goes through and the kernel logs it (crosvm's --seccomp-log-failures): for
        /// finding what a list lacks.
        case log
    }

    public let rules: [SyscallRule]
    public let refusal: Refusal

    public init(rules: [SyscallRule], refusal: Refusal = .trap) {
        self.rules = rules
        self.refusal = refusal
    }

    /// Compiles the list and loads it on the calling thread. Throws for a system call libseccomp
    /// does not know (a typo in a list) or a kernel without seccomp filters.
    public func install() throws(SeccompError) {
        let context = try compile()
        defer { seccomp_release(context) }
        let loaded = seccomp_load(context)
        guard loaded == 0 else { throw .load(errno: -loaded) }
    }

    /// Compiles the list without loading it: a check of the list, before any thread needs it.
    public func compileOnly() throws(SeccompError) {
        seccomp_release(try compile())
    }

    private func compile() throws(SeccompError) -> scmp_filter_ctx {
        let defaultAction: UInt32 = switch refusal {
        case .trap: EBB_SECCOMP_ACTION_TRAP
        case let .fail(errno): ebb_seccomp_action_errno(UInt16(truncatingIfNeeded: errno))
        case .log: EBB_SECCOMP_ACTION_LOG
        }
        guard let context = seccomp_init(defaultAction) else { throw .compile("seccomp_init failed") }
        // A binary tree of system call numbers instead of libseccomp's default linear list: every
        // call a thread makes runs the filter, and a vCPU makes two per exit (measured with
        // scripts/bench-seccomp).
        _ = seccomp_attr_set(context, SCMP_FLTATR_CTL_OPTIMIZE, 2)
        for rule in rules {
            let number = seccomp_syscall_resolve_name(rule.name)
            guard number != __NR_SCMP_ERROR else {
                seccomp_release(context)
                throw .unknownSystemCall(rule.name)
            }
            var comparisons = rule.conditions.map(\.comparison)
            let result = comparisons.withUnsafeMutableBufferPointer {
                seccomp_rule_add_array(context, EBB_SECCOMP_ACTION_ALLOW, number, UInt32($0.count), $0.baseAddress)
            }
            // -EEXIST: the same rule twice, harmless.
            guard result == 0 || result == -EEXIST else {
                seccomp_release(context)
                throw .compile("\(rule): \(String(cString: strerror(-result)))")
            }
        }
        return context
    }
}

extension ArgumentCondition {
    var comparison: scmp_arg_cmp {
        switch self {
        case let .equal(index, value): scmp_arg_cmp(arg: index, op: SCMP_CMP_EQ, datum_a: value, datum_b: 0)
        case let .maskedEqual(index, mask, value): scmp_arg_cmp(arg: index, op: SCMP_CMP_MASKED_EQ, datum_a: mask, datum_b: value)
        }
    }
}

public enum SeccompError: Error, Equatable, CustomStringConvertible {
    case unknownSystemCall(String)
    case compile(String)
    case load(errno: Int32)
    case reporter(errno: Int32)

    public var description: String {
        switch self {
        case let .unknownSystemCall(name): "seccomp: no system call named '\(name)' on this architecture"
        case let .compile(detail): "seccomp: cannot compile the filter: \(detail)"
        case let .load(errno): "seccomp: the kernel refused the filter: \(String(cString: strerror(errno))) (errno \(errno))"
        case let .reporter(errno): "seccomp: cannot catch SIGSYS: \(String(cString: strerror(errno))) (errno \(errno))"
        }
    }
}

/// Turns a refused call into one line on standard error naming the call and the thread, and an
/// exit with `exitStatus` (Firecracker's 148 for a bad system call).
public enum SeccompReporter {
    public static let exitStatus: Int32 = 148

    public static func install() throws(SeccompError) {
        guard ebb_seccomp_install_reporter(exitStatus) == 0 else { throw .reporter(errno: errno) }
    }

    /// The name a report gives the calling thread.
    public static func nameThisThread(_ name: String) { ebb_seccomp_name_this_thread(name) }
}
