/// A guest-physical address. A distinct type so a host pointer, a length and a guest address
/// cannot be mixed up; arithmetic on it is checked and fails instead of wrapping.
public struct GuestAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let value: UInt64

    public init(_ value: UInt64) { self.value = value }

    /// `self + offset`, or nil when it would pass 2^64.
    public func adding(_ offset: UInt64) -> GuestAddress? {
        let (sum, overflow) = value.addingReportingOverflow(offset)
        return overflow ? nil : GuestAddress(sum)
    }

    public static func < (lhs: GuestAddress, rhs: GuestAddress) -> Bool { lhs.value < rhs.value }

    public var description: String { "0x" + String(value, radix: 16) }
}

/// A half-open guest-physical range [start, start + length).
public struct GuestRange: Hashable, Sendable, CustomStringConvertible {
    public let start: GuestAddress
    public let length: UInt64

    /// Nil when the end would pass 2^64.
    public init?(start: GuestAddress, length: UInt64) {
        guard start.adding(length) != nil else { return nil }
        self.start = start
        self.length = length
    }

    /// One past the last byte; representable by construction.
    public var end: UInt64 { start.value &+ length }

    public func contains(_ other: GuestRange) -> Bool {
        other.start.value >= start.value && other.end <= end
    }

    public var description: String { "[\(start), 0x\(String(end, radix: 16)))" }
}

/// The x86 base page: the unit of guest RAM sizes, of the balloon's PFNs and of alignment for
/// what Ebb places in guest memory. (The host's page size, for `madvise`, is `GuestMemory.pageSizeBytes`.)
public enum GuestPage {
    public static let bytes: UInt64 = 4096
}
