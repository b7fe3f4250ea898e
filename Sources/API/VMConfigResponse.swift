import FoundationEssentials
import Virtio
import VMM

/// `GET /vm/config`: the whole configuration in Firecracker's shape (its FullVmConfiguration, the
/// config file's sections), sections Ebb has no such thing for as null or empty, as Firecracker
/// answers for a section not configured.
struct VMConfigResponse: Encodable {
    let resources: MachineResources
    /// The running balloon's target, which PATCH /balloon changes.
    let balloonTargetBytes: UInt64?
    let logger: LoggerSettings?
    let metricsPath: String?

    enum Keys: String, CodingKey {
        case balloon, drives, bootSource = "boot-source", cpuConfig = "cpu-config", logger, machineConfig = "machine-config"
        case metrics, mmdsConfig = "mmds-config", networkInterfaces = "network-interfaces", vsock, entropy
    }

    struct BootSource: Encodable {
        let kernelImagePath: String, initrdPath: String?, bootArgs: String
        enum CodingKeys: String, CodingKey { case kernelImagePath = "kernel_image_path", initrdPath = "initrd_path", bootArgs = "boot_args" }
    }
    struct MachineConfig: Encodable {
        let vcpuCount: Int, memSizeMib: UInt64, smt: Bool, trackDirtyPages: Bool, hugePages: String
        enum CodingKeys: String, CodingKey {
            case vcpuCount = "vcpu_count", memSizeMib = "mem_size_mib", smt, trackDirtyPages = "track_dirty_pages", hugePages = "huge_pages"
        }
    }
    struct Balloon: Encodable {
        let amountMib: UInt64, deflateOnOom: Bool, statsPollingIntervalS: Int, freePageReporting: Bool
        enum CodingKeys: String, CodingKey {
            case amountMib = "amount_mib", deflateOnOom = "deflate_on_oom", statsPollingIntervalS = "stats_polling_interval_s"
            case freePageReporting = "free_page_reporting"
        }
    }
    struct Drive: Encodable {
        let driveId: String, pathOnHost: String, isRootDevice: Bool, isReadOnly: Bool, partuuid: String?, cacheType: String, ioEngine: String
        enum CodingKeys: String, CodingKey {
            case driveId = "drive_id", pathOnHost = "path_on_host", isRootDevice = "is_root_device", isReadOnly = "is_read_only"
            case partuuid, cacheType = "cache_type", ioEngine = "io_engine"
        }
    }
    struct NetworkInterface: Encodable {
        let ifaceId: String, hostDevName: String, guestMac: String?
        enum CodingKeys: String, CodingKey { case ifaceId = "iface_id", hostDevName = "host_dev_name", guestMac = "guest_mac" }
    }
    struct Logger: Encodable {
        let logPath: String, level: String, showLevel: Bool, showLogOrigin: Bool
        enum CodingKeys: String, CodingKey { case logPath = "log_path", level, showLevel = "show_level", showLogOrigin = "show_log_origin" }
    }
    struct Metrics: Encodable {
        let metricsPath: String
        enum CodingKeys: String, CodingKey { case metricsPath = "metrics_path" }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        if let balloon = resources.balloon {
            let interval = balloon.statisticsInterval.map { Int($0.components.seconds) } ?? 0
            try container.encode(Balloon(amountMib: (balloonTargetBytes ?? balloon.targetBytes) >> 20, deflateOnOom: balloon.deflateOnOOM,
                                         statsPollingIntervalS: interval, freePageReporting: balloon.freePageReporting), forKey: .balloon)
        } else {
            try container.encodeNil(forKey: .balloon)
        }
        // Disks of the command line have no drive_id: they are named as the guest sees them. Every
        // disk honours the guest's flushes, which is Firecracker's "Writeback" (see DriveBody).
        let drives = resources.orderedDrives.enumerated().map { index, drive in
            Drive(driveId: drive.id ?? guestDiskName(index), pathOnHost: drive.options.path,
                  isRootDevice: drive.isRoot, isReadOnly: drive.options.readOnly, partuuid: drive.partUUID,
                  cacheType: "Writeback", ioEngine: "Sync")
        }
        try container.encode(drives, forKey: .drives)
        if let kernel = resources.kernelPath {
            try container.encode(BootSource(kernelImagePath: kernel, initrdPath: resources.initrdPath, bootArgs: resources.commandLine), forKey: .bootSource)
        } else {
            try container.encodeNil(forKey: .bootSource)
        }
        try container.encodeNil(forKey: .cpuConfig)
        if let logger {
            let level = logger.level.map { String(describing: $0).capitalized } ?? "Off"
            try container.encode(Logger(logPath: logger.path, level: level, showLevel: logger.showLevel, showLogOrigin: logger.showOrigin), forKey: .logger)
        } else {
            try container.encodeNil(forKey: .logger)
        }
        try container.encode(MachineConfig(vcpuCount: resources.cpuCount, memSizeMib: resources.memoryBytes >> 20, smt: false,
                                           trackDirtyPages: false, hugePages: resources.hugePages ? "2M" : "None"), forKey: .machineConfig)
        if let metricsPath { try container.encode(Metrics(metricsPath: metricsPath), forKey: .metrics) } else { try container.encodeNil(forKey: .metrics) }
        try container.encodeNil(forKey: .mmdsConfig)
        // Interfaces of the command line have no iface_id: they are named as the guest sees them.
        let interfaces = resources.networkInterfaces.enumerated().map { index, interface in
            NetworkInterface(ifaceId: interface.id ?? "eth\(index)", hostDevName: interface.options.tap, guestMac: interface.options.mac?.description)
        }
        try container.encode(interfaces, forKey: .networkInterfaces)
        try container.encodeNil(forKey: .vsock)
        try container.encodeNil(forKey: .entropy)
    }
}

/// What the guest calls the `index`-th disk ("vda", "vdb", ...): the name of a disk given no
/// drive_id (the command line's `--disk`).
func guestDiskName(_ index: Int) -> String {
    "vd" + String(UnicodeScalar(UInt8(97 + index % 26)))
}
