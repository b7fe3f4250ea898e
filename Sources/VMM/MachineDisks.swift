import Virtio

/// One disk as the summary and the API see it.
public struct DiskStatus: Sendable {
    public let path: String
    public let counters: BlockDevice.Counters
    /// Whether `cache=none` (O_DIRECT) is in effect.
    public let direct: Bool
    /// Why the guest broke the device, if it did (DEVICE_NEEDS_RESET).
    public let brokenReason: String?
}

extension Machine {
    /// Every disk, in order (the first is the guest's /dev/vda).
    public var disks: [DiskStatus] {
        virtioDevices.compactMap { attached in
            attached.transport.withDevice(BlockDevice.self) { disk in
                (path: disk.options.path, counters: disk.counters, direct: disk.image.direct)
            }.map { DiskStatus(path: $0.path, counters: $0.counters, direct: $0.direct, brokenReason: attached.transport.brokenReason) }
        }
    }
}
