import Virtio

/// The virtio devices a machine can have, as its configuration lists them. Adding a device type:
/// its folder under `Sources/Virtio/`, and one case here with the line that creates it.
public enum VirtioDeviceConfiguration: Sendable, Equatable {
    case balloon(BalloonDevice.Options)
    case block(BlockDevice.Options)
    case net(NetDevice.Options)

    /// Throws, in one line for the user, when what the device needs on the host cannot be had
    /// (a disk image that is missing or locked, a tap that does not exist).
    func makeDevice() throws -> any VirtioDevice {
        switch self {
        case let .balloon(options):
            return BalloonDevice(options: options)
        case let .block(options):
            let disk = try BlockDevice(options: options)
            if let notice = disk.image.notice { report(notice) }
            return disk
        case let .net(options):
            return try NetDevice(options: options)
        }
    }
}
