import GuestMemory
import Virtio

/// The machine being configured, before it exists (Firecracker's VmResources): the command line,
/// a config file and the API each set it through these validated setters, in any order, and
/// `configuration()` turns it into the `MachineConfiguration` a `Machine` is built from. Every
/// default lives in `Defaults`. What depends on the host (its RAM, KVM's vCPU limit) or on the
/// kernel file is checked when the machine is built.
public struct MachineResources: Sendable, Equatable {
    public enum Defaults {
        public static let memoryBytes: UInt64 = 512 << 20
        public static let cpuCount = 1
        public static let kvmPath = "/dev/kvm"
        /// The balloon is on, with free page reporting and deflate-on-OOM: returning memory is
        /// what Ebb is for.
        public static let balloon = BalloonDevice.Options()
        public static let hugePages = true
        /// On: giving the guest's cold cache back is what Ebb is for.
        public static let idleReclaim: ReclaimSettings? = ReclaimSettings()
        /// The reclaim policy reads the guest's statistics at least this often.
        public static let reclaimStatisticsInterval: Duration = .seconds(1)
    }

    public private(set) var kernelPath: String?
    public private(set) var initrdPath: String?
    public private(set) var commandLine = ""
    public private(set) var memoryBytes = Defaults.memoryBytes
    public private(set) var cpuCount = Defaults.cpuCount
    public private(set) var balloon: BalloonDevice.Options? = Defaults.balloon
    /// The disks, as given (`devices` puts a root drive first: the guest's /dev/vda).
    public private(set) var drives: [Drive] = []
    /// The guest's NICs, in the order given (the first is eth0).
    public private(set) var networkInterfaces: [NetworkInterface] = []
    public var kvmPath = Defaults.kvmPath
    public var prefault = false
    public var hugePages = Defaults.hugePages
    /// The agentless reclaim's settings; nil: off.
    public var idleReclaim = Defaults.idleReclaim
    /// On kvm_pvm, append the kernel options a Linux guest needs there (see `HostKernelOptions`).
    public var addHostKernelOptions = true

    public init() {}

    /// The kernel, its initrd and command line (Firecracker's boot-source).
    public mutating func setBootSource(kernelPath: String, initrdPath: String? = nil, commandLine: String? = nil) throws(ResourcesError) {
        guard !kernelPath.isEmpty else { throw .invalid("the kernel path is empty") }
        if let initrdPath, initrdPath.isEmpty { throw .invalid("the initrd path is empty") }
        self.kernelPath = kernelPath
        self.initrdPath = initrdPath
        if let commandLine { self.commandLine = commandLine }
    }

    public mutating func setCommandLine(_ line: String) { commandLine = line }

    /// vCPUs and guest RAM (Firecracker's machine-config); nil leaves a value as it is.
    public mutating func setMachine(cpuCount: Int? = nil, memoryBytes: UInt64? = nil) throws(ResourcesError) {
        if let cpuCount {
            guard (1...Machine.maximumCPUs).contains(cpuCount) else {
                throw .invalid("\(cpuCount) vCPUs requested: Ebb supports 1 to \(Machine.maximumCPUs)")
            }
            self.cpuCount = cpuCount
        }
        if let memoryBytes {
            guard memoryBytes >= Layout.minimumMemoryBytes else {
                throw .invalid("guest memory \(formatBytes(memoryBytes)) is too small: Ebb needs at least \(formatBytes(Layout.minimumMemoryBytes))")
            }
            guard memoryBytes % GuestPage.bytes == 0 else {
                throw .invalid("guest memory \(memoryBytes) bytes is not a whole number of 4 KiB pages")
            }
            if let balloon, balloon.targetBytes > memoryBytes { throw .balloonTargetTooLarge(target: balloon.targetBytes, memory: memoryBytes) }
            self.memoryBytes = memoryBytes
        }
    }

    /// The balloon and its options, or nil for none.
    public mutating func setBalloon(_ options: BalloonDevice.Options?) throws(ResourcesError) {
        if let options {
            guard options.targetBytes <= memoryBytes else { throw .balloonTargetTooLarge(target: options.targetBytes, memory: memoryBytes) }
            if let interval = options.statisticsInterval, interval < .zero || interval > .seconds(3600) {
                throw .invalid("a statistics interval must be 0 to 3600 seconds")
            }
        }
        balloon = options
    }

    /// One disk as the front ends give it.
    public struct Drive: Sendable, Equatable {
        /// Firecracker's `drive_id`: a PUT with the same id replaces the drive. Disks of the command
        /// line have none.
        public var id: String?
        public var options: BlockDevice.Options
        /// Firecracker's `is_root_device`: the disk goes first (the guest's /dev/vda) and, unless
        /// the command line names a root already, `root=` names it.
        public var isRoot: Bool
        /// With `isRoot`: `root=PARTUUID=...` instead of `root=/dev/vda`.
        public var partUUID: String?

        public init(id: String? = nil, options: BlockDevice.Options, isRoot: Bool = false, partUUID: String? = nil) {
            self.id = id
            self.options = options
            self.isRoot = isRoot
            self.partUUID = partUUID
        }
    }

    /// Adds a disk after those already given. Whether its image can be opened and locked is
    /// checked when the machine is built.
    public mutating func addDrive(_ options: BlockDevice.Options) throws(ResourcesError) {
        try putDrive(Drive(options: options))
    }

    /// Adds a disk, or replaces the one with the same id (Firecracker's PUT /drives/{id}).
    public mutating func putDrive(_ drive: Drive) throws(ResourcesError) {
        let options = drive.options
        guard !options.path.isEmpty else { throw .invalid("a disk's path is empty") }
        if let serial = options.serial, serial.utf8.count > BlockLimits.serialBytes {
            throw .invalid("a disk serial is at most \(BlockLimits.serialBytes) bytes, not \(serial.utf8.count) ('\(serial)')")
        }
        if let id = drive.id, id.isEmpty { throw .invalid("a drive_id is empty") }
        let replaced = drive.id.flatMap { id in drives.firstIndex { $0.id == id } }
        let others = drives.indices.filter { $0 != replaced }.map { drives[$0] }
        if let twin = others.first(where: { $0.options.path == options.path }) {
            throw .invalid("disk '\(options.path)' is given twice\(twin.id.map { " (also drive '\($0)')" } ?? "")")
        }
        if drive.isRoot, let root = others.first(where: \.isRoot) {
            throw .invalid("a root drive already exists ('\(root.id ?? root.options.path)')")
        }
        if let replaced {
            drives[replaced] = drive
        } else {
            guard drives.count + networkInterfaces.count < Self.maximumDrives else {
                throw .invalid("at most \(Self.maximumDrives) disks and network interfaces in all")
            }
            drives.append(drive)
        }
    }

    /// Every virtio device needs an interrupt line and a window; the balloon takes one of them,
    /// disks and network interfaces share the rest.
    public static let maximumDrives = DeviceResourceAllocator.maximumDevices - 1

    /// One guest NIC as the front ends give it.
    public struct NetworkInterface: Sendable, Equatable {
        /// Firecracker's `iface_id`: a PUT with the same id replaces it. None from the command line.
        public var id: String?
        public var options: NetDevice.Options

        public init(id: String? = nil, options: NetDevice.Options) {
            self.id = id
            self.options = options
        }
    }

    /// Adds a network interface, or replaces the one with the same id (Firecracker's PUT
    /// /network-interfaces/{id}). Whether its tap can be opened is checked when the machine is built.
    public mutating func putNetworkInterface(_ interface: NetworkInterface) throws(ResourcesError) {
        let tap = interface.options.tap
        guard !tap.isEmpty, tap.utf8.count < 16 else { throw .invalid("a tap name is 1 to 15 characters, not '\(tap)'") }
        if let id = interface.id, id.isEmpty { throw .invalid("an iface_id is empty") }
        let replaced = interface.id.flatMap { id in networkInterfaces.firstIndex { $0.id == id } }
        let others = networkInterfaces.indices.filter { $0 != replaced }.map { networkInterfaces[$0] }
        if others.contains(where: { $0.options.tap == tap }) { throw .invalid("tap '\(tap)' is given twice") }
        if let mac = interface.options.mac, others.contains(where: { $0.options.mac == mac }) {
            throw .invalid("MAC address \(mac) is given twice")
        }
        if let replaced {
            networkInterfaces[replaced] = interface
        } else {
            guard drives.count + networkInterfaces.count < Self.maximumDrives else {
                throw .invalid("at most \(Self.maximumDrives) disks and network interfaces in all")
            }
            networkInterfaces.append(interface)
        }
    }

    /// The disks in slot order: a root drive first, then the others in the order given.
    public var orderedDrives: [Drive] { orderedDriveIndices.map { drives[$0] } }
    private var orderedDriveIndices: [Int] { drives.indices.filter { drives[$0].isRoot } + drives.indices.filter { !drives[$0].isRoot } }

    /// A running guest's disk has a new backing file (PATCH /drives/{id}): the `index`-th of
    /// `orderedDrives`, for what GET /vm/config answers.
    public mutating func recordDrivePath(orderedIndex index: Int, path: String) {
        let indices = orderedDriveIndices
        guard indices.indices.contains(index) else { return }
        drives[indices[index]].options.path = path
    }

    /// The virtio devices in slot order: the balloon (if any), the disks, the network interfaces.
    public var devices: [VirtioDeviceConfiguration] {
        (balloonAsBuilt.map { [.balloon($0)] } ?? []) + orderedDrives.map { .block($0.options) }
            + networkInterfaces.map { .net($0.options) }
    }

    /// The balloon, asking for statistics often enough for the reclaim policy when it is on.
    var balloonAsBuilt: BalloonDevice.Options? {
        guard var options = balloon, idleReclaim != nil else { return balloon }
        let fastest = Defaults.reclaimStatisticsInterval
        options.statisticsInterval = min(options.statisticsInterval ?? fastest, fastest)
        return options
    }

    /// The command line, with Firecracker's `root=` for a root drive unless it names one already.
    var commandLineWithRoot: String {
        guard let root = drives.first(where: \.isRoot),
              !commandLine.split(separator: " ").contains(where: { $0.hasPrefix("root=") }) else { return commandLine }
        let device = root.partUUID.map { "PARTUUID=\($0)" } ?? "/dev/vda"
        let option = "root=\(device) \(root.options.readOnly ? "ro" : "rw")"
        return commandLine.isEmpty ? option : commandLine + " " + option
    }

    /// What a `Machine` is built from; throws if no kernel was given.
    public func configuration() throws(ResourcesError) -> MachineConfiguration {
        guard let kernelPath else { throw .missing("a kernel (boot source)") }
        var configuration = MachineConfiguration(kernelPath: kernelPath, initrdPath: initrdPath, commandLine: commandLineWithRoot,
                                                 memoryBytes: memoryBytes, cpuCount: cpuCount, kvmPath: kvmPath,
                                                 prefault: prefault, devices: devices)
        configuration.hugePages = hugePages
        configuration.addHostKernelOptions = addHostKernelOptions
        configuration.idleReclaim = idleReclaim
        return configuration
    }
}

/// A configuration value refused by a setter, one line for the user (or the API's fault_message).
public enum ResourcesError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    case missing(String)
    case balloonTargetTooLarge(target: UInt64, memory: UInt64)

    public var description: String {
        switch self {
        case let .invalid(what): what
        case let .missing(what): "no \(what) was configured"
        case let .balloonTargetTooLarge(target, memory):
            "a balloon target of \(formatBytes(target)) is more than the guest's \(formatBytes(memory)) of memory"
        }
    }
}
