import ByteOrder

/// What the guest asked the machine to do with itself.
public enum SystemRequest: Sendable, Equatable {
    case powerOff
    case reset
}

/// The ACPI hardware-reduced sleep and reset registers (FADT SLEEP_CONTROL_REG, SLEEP_STATUS_REG
/// and RESET_REG), as three consecutive byte ports.
public final class ACPIPowerDevice: BusDevice {
    public enum Register {
        public static let sleepControl: UInt64 = 0
        public static let sleepStatus: UInt64 = 1
        public static let reset: UInt64 = 2
    }
    public static let windowLength: UInt64 = 3
    /// The value the FADT tells the guest to write to the reset register.
    public static let resetValue: UInt8 = 0x01
    /// The SLP_TYP `\_S5` announces; S5 is soft-off.
    public static let softOffSleepType: UInt8 = 5
    /// SLP_EN (bit 5) and SLP_TYP (bits 4:2) of the sleep control register (ACPI 6.5, 4.8.3.7).
    static let sleepEnable: UInt8 = 1 << 5

    private let onRequest: @Sendable (SystemRequest) -> Void

    public init(onRequest: @escaping @Sendable (SystemRequest) -> Void) { self.onRequest = onRequest }

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        data.storeLittleEndian(0)
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        let value = UInt8(truncatingIfNeeded: data.littleEndianValue)
        switch offset {
        case Register.sleepControl:
            if value & Self.sleepEnable != 0, (value >> 2) & 0x7 == Self.softOffSleepType { onRequest(.powerOff) }
        case Register.reset:
            if value == Self.resetValue { onRequest(.reset) }
        default:
            break
        }
    }
}
