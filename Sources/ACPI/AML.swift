import ByteOrder

/// A small writer for the ACPI Machine Language subset a VMM's DSDT needs (ACPI 6.5, chapter 20):
/// names, integers, strings, packages, buffers, scopes, devices and resource templates.
public indirect enum AML: Sendable {
    case integer(UInt64)
    case string(String)
    /// A compressed EISA id such as "PNP0501", as an integer.
    case eisaID(String)
    case package([AML])
    case buffer([UInt8])
    /// `Name(NAME, value)`
    case name(String, AML)
    /// `Scope(PATH) { ... }`
    case scope(String, [AML])
    /// `Device(NAME) { ... }`
    case device(String, [AML])

    enum Opcode {
        static let zero: UInt8 = 0x00
        static let one: UInt8 = 0x01
        static let name: UInt8 = 0x08
        static let bytePrefix: UInt8 = 0x0a
        static let wordPrefix: UInt8 = 0x0b
        static let dwordPrefix: UInt8 = 0x0c
        static let stringPrefix: UInt8 = 0x0d
        static let qwordPrefix: UInt8 = 0x0e
        static let scope: UInt8 = 0x10
        static let buffer: UInt8 = 0x11
        static let package: UInt8 = 0x12
        static let ones: UInt8 = 0xff
        static let extended: UInt8 = 0x5b
        static let device: UInt8 = 0x82
        static let rootPrefix: UInt8 = 0x5c
        static let dualNamePrefix: UInt8 = 0x2e
        static let multiNamePrefix: UInt8 = 0x2f
    }

    public var encoded: [UInt8] {
        switch self {
        case let .integer(value):
            return Self.encodeInteger(value)
        case let .string(text):
            return [Opcode.stringPrefix] + Array(text.utf8) + [0]
        case let .eisaID(id):
            return Self.encodeInteger(UInt64(Self.compressEISA(id)))
        case let .package(elements):
            // PackageOp PkgLength NumElements PackageElementList
            let body = [UInt8(elements.count)] + elements.flatMap(\.encoded)
            return [Opcode.package] + Self.withPackageLength(body)
        case let .buffer(bytes):
            let body = Self.encodeInteger(UInt64(bytes.count)) + bytes
            return [Opcode.buffer] + Self.withPackageLength(body)
        case let .name(name, value):
            return [Opcode.name] + Self.nameString(name) + value.encoded
        case let .scope(path, terms):
            return [Opcode.scope] + Self.withPackageLength(Self.nameString(path) + terms.flatMap(\.encoded))
        case let .device(name, terms):
            return [Opcode.extended, Opcode.device] + Self.withPackageLength(Self.nameString(name) + terms.flatMap(\.encoded))
        }
    }

    static func encodeInteger(_ value: UInt64) -> [UInt8] {
        switch value {
        case 0: return [Opcode.zero]
        case 1: return [Opcode.one]
        case ...0xff: return [Opcode.bytePrefix, UInt8(value)]
        case ...0xffff: return [Opcode.wordPrefix] + littleEndianBytes(value, count: 2)
        case ...0xffff_ffff: return [Opcode.dwordPrefix] + littleEndianBytes(value, count: 4)
        default: return [Opcode.qwordPrefix] + littleEndianBytes(value, count: 8)
        }
    }

    /// Prefixes `body` with its PkgLength, which counts its own bytes too (ACPI 20.2.4).
    static func withPackageLength(_ body: [UInt8]) -> [UInt8] {
        var total = body.count + 1
        if total < 0x40 { return [UInt8(total)] + body }
        // Multi-byte form: lead byte has the count of following bytes in bits 7-6 and length bits 3-0.
        for extra in 1...3 {
            total = body.count + 1 + extra
            if total < 1 << (4 + 8 * extra) {
                var encoding = [UInt8(extra << 6) | UInt8(total & 0xf)]
                for index in 0..<extra { encoding.append(UInt8(truncatingIfNeeded: total >> (4 + 8 * index))) }
                return encoding + body
            }
        }
        preconditionFailure("AML object larger than 256 MiB") // Ebb's own tables are a few KiB.
    }

    /// Encodes `\A.B.C`-style paths; each segment is padded to four characters with '_'.
    static func nameString(_ path: String) -> [UInt8] {
        var prefix: [UInt8] = []
        var rest = Substring(path)
        if rest.hasPrefix("\\") {
            prefix.append(Opcode.rootPrefix)
            rest = rest.dropFirst()
        }
        let segments = rest.split(separator: ".").map { segment -> [UInt8] in
            var bytes = Array(segment.utf8.prefix(4))
            while bytes.count < 4 { bytes.append(UInt8(ascii: "_")) }
            return bytes
        }
        switch segments.count {
        case 0: return prefix + [0] // NullName
        case 1: return prefix + segments[0]
        case 2: return prefix + [Opcode.dualNamePrefix] + segments[0] + segments[1]
        default: return prefix + [Opcode.multiNamePrefix, UInt8(segments.count)] + segments.flatMap { $0 }
        }
    }

    /// "PNP0501" -> 0x0105d041: three 5-bit letters and four hex digits, stored big-endian (ACPI 6.1.5).
    static func compressEISA(_ id: String) -> UInt32 {
        let chars = Array(id.utf8)
        guard chars.count == 7 else { return 0 }
        func letter(_ c: UInt8) -> UInt32 { UInt32(c &- 0x40) & 0x1f }
        func hex(_ c: UInt8) -> UInt32 { UInt32(Int(String(UnicodeScalar(c)), radix: 16) ?? 0) }
        let vendor = letter(chars[0]) << 10 | letter(chars[1]) << 5 | letter(chars[2])
        let product = hex(chars[3]) << 12 | hex(chars[4]) << 8 | hex(chars[5]) << 4 | hex(chars[6])
        let bigEndian = vendor << 16 | product
        return bigEndian.byteSwapped
    }
}
