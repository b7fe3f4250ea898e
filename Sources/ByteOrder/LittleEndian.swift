/// Little-endian integers and byte checksums: how guest structures, ACPI tables, the MP table and
/// device registers lay out numbers. One definition for every module that writes or reads them.

/// `value`'s low `count` bytes, least significant first.
public func littleEndianBytes(_ value: UInt64, count: Int) -> [UInt8] {
    (0..<count).map { $0 < 8 ? UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) : 0 }
}

/// `value`'s bytes, least significant first: its width is its type's (UInt16: 2 bytes).
public func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

/// The first up-to-8 bytes of `bytes`, least significant first, as an integer.
public func littleEndianValue(_ bytes: some Collection<UInt8>) -> UInt64 {
    var value: UInt64 = 0
    for (index, byte) in bytes.prefix(8).enumerated() { value |= UInt64(byte) << (8 * UInt64(index)) }
    return value
}

/// The byte that makes `bytes` sum to zero modulo 256 (ACPI tables, the MP table).
public func checksum(_ bytes: some Sequence<UInt8>) -> UInt8 {
    0 &- bytes.reduce(0, &+)
}

extension UnsafeRawBufferPointer {
    /// The first up-to-8 bytes as a little-endian integer.
    public var littleEndianValue: UInt64 { ByteOrder.littleEndianValue(self) }
}

extension UnsafeMutableRawBufferPointer {
    /// Stores `value` little-endian into every byte of the buffer (at most 8; zeros past them).
    public func storeLittleEndian(_ value: UInt64) {
        for (index, byte) in littleEndianBytes(value, count: count).enumerated() { self[index] = byte }
    }
}
