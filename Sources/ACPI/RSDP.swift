import ByteOrder

/// The Root System Description Pointer, ACPI 2.0+ form (ACPI 6.5, 5.2.5.3): points at the XSDT.
public struct RSDP: Sendable {
    public static let sizeBytes = 36
    public let xsdtAddress: UInt64

    public init(xsdtAddress: UInt64) { self.xsdtAddress = xsdtAddress }

    public var encoded: [UInt8] {
        var bytes = Array("RSD PTR ".utf8) + [0] + ACPIIdentity.oemID + [2] // checksum, OEM, revision 2
        bytes += [0, 0, 0, 0]                                               // no RSDT
        bytes += littleEndianBytes(UInt64(Self.sizeBytes), count: 4)
        bytes += littleEndianBytes(xsdtAddress, count: 8)
        bytes += [0, 0, 0, 0]                                               // extended checksum, reserved
        bytes[8] = checksum(bytes[0..<20])
        bytes[32] = checksum(bytes)
        return bytes
    }
}

/// The Extended System Description Table: 64-bit pointers to every other table but the DSDT.
public func makeXSDT(entries: [UInt64]) -> SystemDescriptionTable {
    SystemDescriptionTable(signature: "XSDT", revision: 1, body: entries.flatMap { littleEndianBytes($0, count: 8) })
}
