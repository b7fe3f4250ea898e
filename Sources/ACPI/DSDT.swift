/// A device as the DSDT describes it: how the guest's ACPI enumerator finds it.
public struct ACPIDevice: Sendable {
    public enum HardwareID: Sendable {
        case eisa(String)   // e.g. "PNP0501"
        case string(String) // e.g. "LNRO0005"
    }

    public let name: String
    public let hardwareID: HardwareID
    public let uniqueID: UInt64
    public let resources: [ResourceDescriptor]

    public init(name: String, hardwareID: HardwareID, uniqueID: UInt64, resources: [ResourceDescriptor]) {
        self.name = name
        self.hardwareID = hardwareID
        self.uniqueID = uniqueID
        self.resources = resources
    }

    var aml: AML {
        let hid: AML
        switch hardwareID {
        case let .eisa(id): hid = .eisaID(id)
        case let .string(id): hid = .string(id)
        }
        return .device(name, [
            .name("_HID", hid),
            .name("_UID", .integer(uniqueID)),
            .name("_CRS", ResourceDescriptor.template(resources)),
        ])
    }
}

/// The Differentiated System Description Table: `\_S5` for power-off and every device under `\_SB`.
public func makeDSDT(devices: [ACPIDevice], sleepTypeS5: UInt8) -> SystemDescriptionTable {
    let s5: AML = .name("_S5", .package([.integer(UInt64(sleepTypeS5)), .integer(UInt64(sleepTypeS5)), .integer(0), .integer(0)]))
    let systemBus: AML = .scope("\\_SB", devices.map(\.aml))
    // Revision 2: integers are 64-bit.
    return SystemDescriptionTable(signature: "DSDT", revision: 2, body: s5.encoded + systemBus.encoded)
}
