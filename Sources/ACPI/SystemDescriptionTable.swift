import ByteOrder

/// Identity written into every table Ebb makes.
public enum ACPIIdentity {
    public static let oemID = Array("EBBVMM".utf8)          // 6 bytes
    public static let oemTableID = Array("EBBMACHN".utf8)   // 8 bytes
    public static let creatorID = Array("EBBV".utf8)        // 4 bytes
    public static let oemRevision: UInt32 = 1
    public static let creatorRevision: UInt32 = 1
}

/// A table with the standard 36-byte header (ACPI 6.5, 5.2.6); the checksum makes all bytes sum to 0.
public struct SystemDescriptionTable: Sendable {
    public static let headerBytes = 36
    public let signature: String
    public let revision: UInt8
    public let body: [UInt8]

    public init(signature: String, revision: UInt8, body: [UInt8]) {
        self.signature = signature
        self.revision = revision
        self.body = body
    }

    public var encoded: [UInt8] {
        var bytes = Array(signature.utf8.prefix(4))
        bytes += littleEndianBytes(UInt64(Self.headerBytes + body.count), count: 4)
        bytes += [revision, 0] // checksum patched below
        bytes += ACPIIdentity.oemID + ACPIIdentity.oemTableID
        bytes += littleEndianBytes(UInt64(ACPIIdentity.oemRevision), count: 4)
        bytes += ACPIIdentity.creatorID
        bytes += littleEndianBytes(UInt64(ACPIIdentity.creatorRevision), count: 4)
        bytes += body
        bytes[9] = checksum(bytes)
        return bytes
    }
}

/// A Generic Address Structure (ACPI 6.5, 5.2.3.2).
public struct GenericAddress: Sendable, Equatable {
    public enum Space: UInt8, Sendable { case systemMemory = 0, systemIO = 1 }
    public let space: Space
    public let bitWidth: UInt8
    /// Access size: 1 byte, 2 word, 3 dword, 4 qword.
    public let accessSize: UInt8
    public let address: UInt64

    public static func ioPort(_ port: UInt16, bytes: UInt8 = 1) -> GenericAddress {
        GenericAddress(space: .systemIO, bitWidth: bytes * 8, accessSize: bytes == 1 ? 1 : bytes == 2 ? 2 : 3, address: UInt64(port))
    }

    var encoded: [UInt8] {
        [space.rawValue, bitWidth, 0, accessSize] + littleEndianBytes(address, count: 8)
    }
}
