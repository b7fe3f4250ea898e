/// The guest resources of one virtio-mmio device: its register window, its interrupt line and the
/// name of its ACPI device object.
public struct VirtioSlot: Sendable, Equatable {
    public let index: Int
    public let mmioBase: UInt64
    public let gsi: UInt32
    /// A four-character ACPI NameSeg, unique per slot: "VR" and the index in two hex digits.
    public let acpiName: String
}

/// Hands out virtio-mmio windows, GSIs and ACPI names in build order (the first disk gets the first
/// slot, so it is /dev/vda). Needs no KVM; knows its limits and says which one was reached.
public struct DeviceResourceAllocator: Sendable {
    /// The IOAPIC pins a device may use: from `Layout.firstDeviceIRQ` to the last pin. Every one is
    /// routed by the MP table and described in the DSDT, as the MADT's IOAPIC covers them all.
    public static let deviceGSIs = Array(Layout.firstDeviceIRQ..<Layout.ioAPICPins)
    /// As many devices as there are interrupt lines for them (19).
    public static let maximumDevices = deviceGSIs.count

    public private(set) var allocated: [VirtioSlot] = []

    public init() {}

    public mutating func allocate() throws(ResourceError) -> VirtioSlot {
        let index = allocated.count
        guard index < Self.maximumDevices else { throw .tooManyDevices(maximum: Self.maximumDevices) }
        let base = Layout.virtioMMIOBase + UInt64(index) * Layout.virtioMMIOStride
        guard base + Layout.virtioMMIOStride <= Layout.ioAPICAddress else { throw .tooManyDevices(maximum: index) }
        let slot = VirtioSlot(index: index, mmioBase: base, gsi: Self.deviceGSIs[index], acpiName: Self.acpiName(index: index))
        allocated.append(slot)
        return slot
    }

    static func acpiName(index: Int) -> String {
        let hex = String(index, radix: 16, uppercase: true)
        return "VR" + String(repeating: "0", count: max(0, 2 - hex.count)) + hex
    }
}

public enum ResourceError: Error, Equatable, CustomStringConvertible {
    case tooManyDevices(maximum: Int)

    public var description: String {
        switch self {
        case let .tooManyDevices(maximum): "too many virtio devices: Ebb has interrupt lines for \(maximum)"
        }
    }
}
