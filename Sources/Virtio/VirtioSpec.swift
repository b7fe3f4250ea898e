/// Constants from the virtio 1.2 specification, named as there.
public enum VirtioStatus {
    public static let acknowledge: UInt32 = 1
    public static let driver: UInt32 = 2
    public static let driverOK: UInt32 = 4
    public static let featuresOK: UInt32 = 8
    public static let deviceNeedsReset: UInt32 = 0x40
    public static let failed: UInt32 = 0x80
}

/// Device-independent feature bits (virtio 1.2, 6).
public enum VirtioFeature {
    /// VIRTIO_F_VERSION_1: the device is not legacy. Ebb requires it.
    public static let version1: UInt64 = 1 << 32
    /// VIRTIO_F_RING_EVENT_IDX: the driver says after which used entry it wants an interrupt
    /// (`used_event`), the device after which avail entry it wants a notification
    /// (`avail_event`). Offered for every device by the transport.
    public static let ringEventIndex: UInt64 = 1 << 29
    /// VIRTIO_F_INDIRECT_DESC: a descriptor may point at a table of descriptors, so a request of
    /// many buffers takes one ring slot (Linux's virtio_net sends a 64 KiB segment of 17 pages in
    /// one slot instead of 19). Offered for every device by the transport.
    public static let indirectDescriptors: UInt64 = 1 << 28
}

/// InterruptStatus bits (virtio 1.2, 4.2.2).
public enum VirtioInterrupt {
    public static let usedBuffer: UInt32 = 1 << 0
    public static let configChange: UInt32 = 1 << 1
}

/// virtio-mmio register offsets, layout version 2 (virtio 1.2, 4.2.2).
public enum VirtioMMIORegister {
    public static let magicValue: UInt64 = 0x000
    public static let version: UInt64 = 0x004
    public static let deviceID: UInt64 = 0x008
    public static let vendorID: UInt64 = 0x00c
    public static let deviceFeatures: UInt64 = 0x010
    public static let deviceFeaturesSelect: UInt64 = 0x014
    public static let driverFeatures: UInt64 = 0x020
    public static let driverFeaturesSelect: UInt64 = 0x024
    public static let queueSelect: UInt64 = 0x030
    public static let queueSizeMax: UInt64 = 0x034
    public static let queueSize: UInt64 = 0x038
    public static let queueReady: UInt64 = 0x044
    public static let queueNotify: UInt64 = 0x050
    public static let interruptStatus: UInt64 = 0x060
    public static let interruptACK: UInt64 = 0x064
    public static let status: UInt64 = 0x070
    public static let queueDescriptorLow: UInt64 = 0x080
    public static let queueDescriptorHigh: UInt64 = 0x084
    public static let queueDriverLow: UInt64 = 0x090
    public static let queueDriverHigh: UInt64 = 0x094
    public static let queueDeviceLow: UInt64 = 0x0a0
    public static let queueDeviceHigh: UInt64 = 0x0a4
    public static let configGeneration: UInt64 = 0x0fc
    public static let config: UInt64 = 0x100

    /// "virt" in little-endian.
    public static let magic: UInt32 = 0x7472_6976
    /// VendorID: "BBE" (Ebb) in little-endian.
    public static let vendor: UInt32 = 0x0045_4242
    public static let layoutVersion: UInt32 = 2
    /// The window each device occupies; config space ends well before it.
    public static let windowLength: UInt64 = 0x200
}
