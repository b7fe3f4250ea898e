import ByteOrder

/// Little-endian reads from an untrusted byte array; every read is bounds-checked and a short
/// read returns nil rather than trapping.
struct ByteReader {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func u8(_ offset: Int) -> UInt8? {
        offset >= 0 && offset < bytes.count ? bytes[offset] : nil
    }

    func integer<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T? {
        let size = MemoryLayout<T>.size
        guard offset >= 0, offset <= bytes.count - size else { return nil }
        var value: T = 0
        for index in (0..<size).reversed() {
            value = value << 8 | T(bytes[offset + index])
        }
        return value
    }

    func u16(_ offset: Int) -> UInt16? { integer(UInt16.self, at: offset) }
    func u32(_ offset: Int) -> UInt32? { integer(UInt32.self, at: offset) }
    func u64(_ offset: Int) -> UInt64? { integer(UInt64.self, at: offset) }

    func slice(_ offset: Int, count: Int) -> ArraySlice<UInt8>? {
        guard offset >= 0, count >= 0, offset <= bytes.count, count <= bytes.count - offset else { return nil }
        return bytes[offset..<offset + count]
    }
}

/// Little-endian writes into a fixed-size byte array (boot_params, start info).
struct ByteWriter {
    var bytes: [UInt8]

    init(size: Int) { bytes = [UInt8](repeating: 0, count: size) }

    mutating func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { source in
            for (index, byte) in source.enumerated() { bytes[offset + index] = byte }
        }
    }

    mutating func put(_ source: some Collection<UInt8>, at offset: Int) {
        for (index, byte) in source.enumerated() { bytes[offset + index] = byte }
    }
}

