import Virtio

/// The virtio devices a machine can have, as its configuration lists them. Adding a device type:
/// its folder under `Sources/Virtio/`, and one case here with the line that creates it.
public enum VirtioDeviceConfiguration: Sendable, Equatable {
    case balloon(BalloonDevice.Options)

    func makeDevice() -> any VirtioDevice {
        switch self {
        case let .balloon(options): BalloonDevice(options: options)
        }
    }
}
