/// What the user asked for, already parsed and validated by the front end; `Machine` checks what
/// depends on the host (memory, CPU count) and on the kernel file.
public struct MachineConfiguration: Sendable {
    public var kernelPath: String
    public var initrdPath: String?
    public var commandLine: String
    public var memoryBytes: UInt64
    public var cpuCount: Int
    public var kvmPath: String
    /// Populate guest RAM before boot (like QEMU's -mem-prealloc).
    public var prefault: Bool
    /// The virtio devices, in slot order.
    public var devices: [VirtioDeviceConfiguration]
    /// Back guest RAM with transparent huge pages where the host allows.
    public var hugePages = MachineResources.Defaults.hugePages
    /// On kvm_pvm, append the kernel options a Linux guest needs there (see `HostKernelOptions`).
    public var addHostKernelOptions = true
    /// The agentless reclaim (`ReclaimPolicy`); nil: off. It needs the balloon.
    public var idleReclaim: ReclaimSettings? = MachineResources.Defaults.idleReclaim

    public init(kernelPath: String, initrdPath: String? = nil, commandLine: String = "",
                memoryBytes: UInt64 = MachineResources.Defaults.memoryBytes, cpuCount: Int = MachineResources.Defaults.cpuCount,
                kvmPath: String = MachineResources.Defaults.kvmPath, prefault: Bool = false,
                devices: [VirtioDeviceConfiguration] = [.balloon(MachineResources.Defaults.balloon)]) {
        self.kernelPath = kernelPath
        self.initrdPath = initrdPath
        self.commandLine = commandLine
        self.memoryBytes = memoryBytes
        self.cpuCount = cpuCount
        self.kvmPath = kvmPath
        self.prefault = prefault
        self.devices = devices
    }

    /// The balloon's options, if the machine has one.
    public var balloon: BalloonDevice.Options? {
        for case let .balloon(options) in devices { return options }
        return nil
    }
}

/// A problem with the configuration or the files it names, one line for the user.
public enum ConfigurationError: Error, CustomStringConvertible, Equatable {
    case fileMissing(role: String, path: String)
    case fileUnreadable(role: String, path: String, errno: Int32)
    case memoryTooSmall(bytes: UInt64, minimum: UInt64)
    case memoryTooLarge(bytes: UInt64, maximum: UInt64)
    case memoryNotPageAligned(bytes: UInt64)
    case cpuCount(requested: Int, maximum: Int)
    case initrdDoesNotFit(sizeBytes: UInt64)
    case kernelDoesNotFit(String)
    case tablesDoNotFit(what: String, bytes: Int, limit: UInt64)

    public var description: String {
        switch self {
        case let .fileMissing(role, path):
            return "\(role) '\(path)' does not exist"
        case let .fileUnreadable(role, path, errno):
            return "cannot read \(role) '\(path)': \(String(cString: strerror(errno)))"
        case let .memoryTooSmall(bytes, minimum):
            return "guest memory \(formatBytes(bytes)) is too small: Ebb needs at least \(formatBytes(minimum))"
        case let .memoryTooLarge(bytes, maximum):
            return "guest memory \(formatBytes(bytes)) is more than this host's \(formatBytes(maximum)) of RAM"
        case let .memoryNotPageAligned(bytes):
            return "guest memory \(bytes) bytes is not a whole number of 4 KiB pages"
        case let .cpuCount(requested, maximum):
            return "\(requested) vCPUs requested: Ebb supports 1 to \(maximum) on this host"
        case let .initrdDoesNotFit(size):
            return "the initrd (\(formatBytes(size))) does not fit in guest memory below the kernel's limit; give the guest more memory"
        case let .kernelDoesNotFit(what):
            return "the kernel does not fit in guest memory: \(what)"
        case let .tablesDoNotFit(what, bytes, limit):
            return "\(what) need \(bytes) bytes, more than the \(limit) Ebb reserves for them (too many devices or vCPUs)"
        }
    }
}

/// "512 MiB", "1.5 GiB", "4 KiB": sizes as a person reads them.
public func formatBytes(_ bytes: UInt64) -> String {
    let units: [(UInt64, String)] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
    for (scale, unit) in units where bytes >= scale {
        if bytes % scale == 0 { return "\(bytes / scale) \(unit)" }
        let value = Double(bytes) / Double(scale)
        return "\((value * 10).rounded() / 10) \(unit)"
    }
    return "\(bytes) bytes"
}

#if canImport(Glibc)
import Glibc
#endif
import Virtio
