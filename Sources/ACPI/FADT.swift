import ByteOrder

/// A hardware-reduced Fixed ACPI Description Table, revision 6 (ACPI 6.5, 5.2.9): no SCI, no PM
/// blocks; power-off through the sleep control register and reset through the reset register.
public struct FADT: Sendable {
    public static let revision: UInt8 = 6
    public static let minorRevision: UInt8 = 5
    static let sizeBytes = 276

    /// FADT flags (table 5.10).
    enum Flag {
        static let resetRegisterSupported: UInt32 = 1 << 10
        static let hardwareReducedACPI: UInt32 = 1 << 20
    }

    /// IA-PC boot architecture flags (table 5.11): nothing legacy that a guest should probe.
    enum BootArchitecture {
        static let vgaNotPresent: UInt16 = 1 << 2
        static let msiNotSupported: UInt16 = 1 << 3
        static let cmosRTCNotPresent: UInt16 = 1 << 5
    }

    public let dsdtAddress: UInt64
    public let sleepControl: GenericAddress
    public let sleepStatus: GenericAddress
    public let resetRegister: GenericAddress
    public let resetValue: UInt8

    public init(dsdtAddress: UInt64, sleepControl: GenericAddress, sleepStatus: GenericAddress,
                resetRegister: GenericAddress, resetValue: UInt8) {
        self.dsdtAddress = dsdtAddress
        self.sleepControl = sleepControl
        self.sleepStatus = sleepStatus
        self.resetRegister = resetRegister
        self.resetValue = resetValue
    }

    public var table: SystemDescriptionTable {
        var body = [UInt8](repeating: 0, count: Self.sizeBytes - SystemDescriptionTable.headerBytes)
        func put(_ bytes: [UInt8], at tableOffset: Int) {
            let offset = tableOffset - SystemDescriptionTable.headerBytes
            body.replaceSubrange(offset..<offset + bytes.count, with: bytes)
        }
        // The 32-bit DSDT field too, since the DSDT lives below 4 GiB and older parsers read it.
        put(littleEndianBytes(dsdtAddress, count: 4), at: 40)
        let bootArchitecture = BootArchitecture.vgaNotPresent | BootArchitecture.msiNotSupported | BootArchitecture.cmosRTCNotPresent
        put(littleEndianBytes(UInt64(bootArchitecture), count: 2), at: 109)
        put(littleEndianBytes(UInt64(Flag.hardwareReducedACPI | Flag.resetRegisterSupported), count: 4), at: 112)
        put(resetRegister.encoded, at: 116)
        put([resetValue], at: 128)
        put([Self.minorRevision], at: 131)
        put(littleEndianBytes(dsdtAddress, count: 8), at: 140)
        put(sleepControl.encoded, at: 244)
        put(sleepStatus.encoded, at: 256)
        put(Array("EBBVMM\0\0".utf8), at: 268) // hypervisor vendor identity
        return SystemDescriptionTable(signature: "FACP", revision: Self.revision, body: body)
    }
}
