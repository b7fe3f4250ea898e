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

/// Why a running guest's disk could not get a new backing file (PATCH /drives/{id}).
public enum DiskReplaceError: Error, Equatable, CustomStringConvertible {
    case noSuchDisk(index: Int)
    case image(DiskImageError)

    public var description: String {
        switch self {
        case let .noSuchDisk(index): "the machine has no disk \(index + 1)"
        case let .image(error): error.description
        }
    }
}

extension Machine {
    /// Gives the `index`-th disk (slot order, as `disks`) a new backing file, opened and locked as
    /// at boot with the disk's read-only and cache settings; the driver hears of it by a config
    /// interrupt and reads the new capacity. The file the disk has already is measured again
    /// instead (it may have grown), as Firecracker does for a PATCH naming the same path.
    public func replaceDiskImage(index: Int, path: String) throws(DiskReplaceError) {
        let transports = virtioDevices.map(\.transport).filter { $0.withDevice(BlockDevice.self) { _ in true } ?? false }
        guard transports.indices.contains(index) else { throw .noSuchDisk(index: index) }
        let transport = transports[index]
        guard let disk = transport.withDevice(BlockDevice.self, { ($0.image, $0.options) }) else { throw .noSuchDisk(index: index) }
        let (current, options) = disk
        let image: DiskImage
        do throws(DiskImageError) {
            image = current.isSameFile(as: path) ? try current.remeasured(path: path)
                : try DiskImage(path: path, readOnly: options.readOnly, cache: options.cache)
        } catch { throw .image(error) }
        if let notice = image.notice { report(notice) }
        transport.configChanged(BlockDevice.self) { $0.replaceImage(image) }
    }
}
