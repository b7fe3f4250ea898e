import ByteOrder

/// The Multiple APIC Description Table (ACPI 6.5, 5.2.12): one local APIC per vCPU, the IOAPIC,
/// and the ISA IRQ 0 -> GSI 2 override that the PC timer wiring implies.
public struct MADT: Sendable {
    public static let revision: UInt8 = 5
    /// PCAT_COMPAT: the machine also has dual 8259 PICs (KVM's in-kernel PIC), to be masked.
    static let pcatCompatible: UInt32 = 1

    public let localAPICAddress: UInt32
    public let apicIDs: [UInt8]
    public let ioAPIC: (id: UInt8, address: UInt32, gsiBase: UInt32)

    public init(localAPICAddress: UInt32, apicIDs: [UInt8], ioAPIC: (id: UInt8, address: UInt32, gsiBase: UInt32)) {
        self.localAPICAddress = localAPICAddress
        self.apicIDs = apicIDs
        self.ioAPIC = ioAPIC
    }

    public var table: SystemDescriptionTable {
        var body = littleEndianBytes(UInt64(localAPICAddress), count: 4) + littleEndianBytes(UInt64(Self.pcatCompatible), count: 4)
        for (uid, apicID) in apicIDs.enumerated() {
            // Type 0, length 8: processor UID, APIC id, flags (bit 0: enabled).
            body += [0, 8, UInt8(uid), apicID] + littleEndianBytes(1, count: 4)
        }
        // Type 1, length 12: IOAPIC id, reserved, address, GSI base.
        body += [1, 12, ioAPIC.id, 0] + littleEndianBytes(UInt64(ioAPIC.address), count: 4)
            + littleEndianBytes(UInt64(ioAPIC.gsiBase), count: 4)
        // Type 2, length 10: bus 0 (ISA), source IRQ 0, GSI 2, flags 0 (conforms to the bus).
        body += [2, 10, 0, 0] + littleEndianBytes(2, count: 4) + [0, 0]
        // Type 4, length 6: local APIC NMI on LINT1 for all processors (UID 0xff).
        body += [4, 6, 0xff, 0, 0, 1]
        return SystemDescriptionTable(signature: "APIC", revision: Self.revision, body: body)
    }
}
