/// One system call a filter lets through, on conditions on its arguments (all of them must hold).
/// A filter holding several rules for the same call lets it through when any one of them holds.
public struct SyscallRule: Sendable, Hashable, CustomStringConvertible {
    public let name: String
    public let conditions: [ArgumentCondition]

    public init(_ name: String, _ conditions: ArgumentCondition...) {
        self.name = name
        self.conditions = conditions
    }

    /// `name` when its argument `index` is one of `values`: one rule per value.
    public static func when(_ name: String, argument index: UInt32, isOneOf values: [UInt64]) -> [SyscallRule] {
        values.map { SyscallRule(name, .equal(argument: index, to: $0)) }
    }

    public var description: String {
        conditions.isEmpty ? name : "\(name)(\(conditions.map(\.description).joined(separator: ", ")))"
    }
}

/// A test on one argument of a system call. Pointers cannot be followed (a path is just a number
/// to seccomp), so the tests are on integers: ioctl requests, madvise advice, open flags.
public enum ArgumentCondition: Sendable, Hashable, CustomStringConvertible {
    case equal(argument: UInt32, to: UInt64)
    /// `argument & mask == value`, e.g. no write or create bits in open's flags.
    case maskedEqual(argument: UInt32, mask: UInt64, value: UInt64)

    public var description: String {
        switch self {
        case let .equal(index, value): "arg\(index) == 0x\(String(value, radix: 16))"
        case let .maskedEqual(index, mask, value): "arg\(index) & 0x\(String(mask, radix: 16)) == 0x\(String(value, radix: 16))"
        }
    }
}
