/// The fuzzer's bytes, taken front to back. Past the end every read gives zeros, so every input
/// is a valid program for a target and libFuzzer never wastes runs on inputs that are too short.
public struct FuzzInput {
    private let bytes: [UInt8]
    private var offset = 0

    public init(_ start: UnsafeRawPointer, _ count: Int) {
        bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    }

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { offset >= bytes.count }

    public mutating func integer<T: FixedWidthInteger>(_ type: T.Type = T.self) -> T {
        var value: T = 0
        for index in 0..<MemoryLayout<T>.size {
            value |= T(truncatingIfNeeded: byte()) << (8 * index)
        }
        return value
    }

    public mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// Up to `count` bytes (fewer at the end).
    public mutating func bytes(_ count: Int) -> [UInt8] {
        let end = min(bytes.count, offset + max(0, count))
        defer { offset = max(offset, end) }
        return offset < end ? Array(bytes[offset..<end]) : []
    }

    /// Bytes up to (not including) `terminator`, which is skipped.
    public mutating func bytes(until terminator: UInt8) -> [UInt8] {
        let start = min(offset, bytes.count)
        let end = bytes[start...].firstIndex(of: terminator) ?? bytes.count
        offset = min(bytes.count, end + 1)
        return Array(bytes[start..<end])
    }

    public mutating func rest() -> [UInt8] { bytes(bytes.count) }
}
