import FoundationEssentials
import Virtio
import VMM

/// Request bodies and the config file in Firecracker's format (its swagger definition), decoded
/// strictly: like Firecracker, an unknown field is an error, not something to ignore. Each body
/// applies itself to `MachineResources` through its validated setters, so the command line, the
/// config file and the API configure a machine the same way.

/// Any key of a JSON object, to find the ones a type does not know.
struct AnyKey: CodingKey {
    let stringValue: String
    let intValue: Int? = nil
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension Decoder {
    /// Throws for the first key of this object that `Keys` does not name.
    func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_ known: Keys.Type) throws {
        let names = Set(Keys.allCases.map(\.stringValue))
        let container = try container(keyedBy: AnyKey.self)
        if let unknown = container.allKeys.first(where: { !names.contains($0.stringValue) }) {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath + [unknown], debugDescription: "unknown field '\(unknown.stringValue)'"))
        }
    }

    /// The value of a body's one field, which it must have; any other field is refused.
    func onlyField<Key: CodingKey & CaseIterable, Value: Decodable>(_ key: Key, as type: Value.Type) throws -> Value {
        try rejectUnknownKeys(Key.self)
        return try container(keyedBy: Key.self).decode(Value.self, forKey: key)
    }
}

/// A body that could not be used: the text is the API's `fault_message` or the config file error.
public struct BodyError: Error, Equatable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }

    /// A decoding error as one line naming the field.
    init(decoding error: any Error) {
        switch error {
        case let DecodingError.dataCorrupted(context):
            self.init(Self.describe(context))
        case let DecodingError.keyNotFound(key, context):
            self.init("missing field '\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))'")
        case let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context):
            self.init("field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type")
        default:
            self.init("the body is not valid JSON")
        }
    }

    private static func describe(_ context: DecodingError.Context) -> String {
        let path = context.codingPath.dropLast().map(\.stringValue).joined(separator: ".")
        guard context.debugDescription.hasPrefix("unknown field") else { return "the body is not valid JSON" }
        return path.isEmpty ? context.debugDescription : "\(context.debugDescription) in '\(path)'"
    }
}

/// Decodes `T` from `bytes`, every error as a `BodyError`.
func decodeBody<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws(BodyError) -> T {
    do { return try JSONDecoder().decode(type, from: Data(bytes)) } catch { throw BodyError(decoding: error) }
}

/// PUT /boot-source; "boot-source" in a config file.
public struct BootSourceBody: Decodable, Equatable {
    public var kernelImagePath: String
    public var bootArgs: String?
    public var initrdPath: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case kernelImagePath = "kernel_image_path", bootArgs = "boot_args", initrdPath = "initrd_path"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        kernelImagePath = try container.decode(String.self, forKey: .kernelImagePath)
        bootArgs = try container.decodeIfPresent(String.self, forKey: .bootArgs)
        initrdPath = try container.decodeIfPresent(String.self, forKey: .initrdPath)
    }

    public func apply(to resources: inout MachineResources) throws(ResourcesError) {
        try resources.setBootSource(kernelPath: kernelImagePath, initrdPath: initrdPath, commandLine: bootArgs)
    }
}

/// PUT/PATCH /machine-config; "machine-config" in a config file.
public struct MachineConfigBody: Decodable, Equatable {
    public var vcpuCount: Int?
    public var memSizeMib: UInt64?
    public var smt: Bool?
    public var trackDirtyPages: Bool?
    /// "None" or "2M": guest RAM on 4 KiB pages or on (transparent) 2 MiB pages.
    public var hugePages: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case vcpuCount = "vcpu_count", memSizeMib = "mem_size_mib", smt, trackDirtyPages = "track_dirty_pages", hugePages = "huge_pages"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        vcpuCount = try container.decodeIfPresent(Int.self, forKey: .vcpuCount)
        memSizeMib = try container.decodeIfPresent(UInt64.self, forKey: .memSizeMib)
        smt = try container.decodeIfPresent(Bool.self, forKey: .smt)
        trackDirtyPages = try container.decodeIfPresent(Bool.self, forKey: .trackDirtyPages)
        hugePages = try container.decodeIfPresent(String.self, forKey: .hugePages)
    }

    public func apply(to resources: inout MachineResources) throws(ResourcesError) {
        if smt == true { throw .invalid("smt is not supported: Ebb's vCPUs are one thread per core") }
        if trackDirtyPages == true { throw .invalid("track_dirty_pages is not supported: Ebb has no snapshots") }
        let (memoryBytes, overflow) = (memSizeMib ?? 0).multipliedReportingOverflow(by: 1 << 20)
        guard !overflow else { throw .invalid("mem_size_mib \(memSizeMib ?? 0) is too large") }
        try resources.setMachine(cpuCount: vcpuCount, memoryBytes: memSizeMib == nil ? nil : memoryBytes)
        switch hugePages {
        case nil: break
        case "None": resources.hugePages = false
        case "2M": resources.hugePages = true
        case let other?: throw .invalid("huge_pages '\(other)' is not one of None, 2M")
        }
    }
}

/// PUT /balloon; "balloon" in a config file.
public struct BalloonBody: Decodable, Equatable {
    public var amountMib: UInt64
    public var deflateOnOom: Bool
    public var statsPollingIntervalS: Int?
    public var freePageReporting: Bool?
    public var freePageHinting: Bool?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case amountMib = "amount_mib", deflateOnOom = "deflate_on_oom", statsPollingIntervalS = "stats_polling_interval_s"
        case freePageReporting = "free_page_reporting", freePageHinting = "free_page_hinting"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        amountMib = try container.decode(UInt64.self, forKey: .amountMib)
        deflateOnOom = try container.decode(Bool.self, forKey: .deflateOnOom)
        statsPollingIntervalS = try container.decodeIfPresent(Int.self, forKey: .statsPollingIntervalS)
        freePageReporting = try container.decodeIfPresent(Bool.self, forKey: .freePageReporting)
        freePageHinting = try container.decodeIfPresent(Bool.self, forKey: .freePageHinting)
    }

    public func apply(to resources: inout MachineResources) throws(ResourcesError) {
        if freePageHinting == true { throw .invalid("free_page_hinting is not supported: Ebb returns free memory by free page reporting") }
        let (target, overflow) = amountMib.multipliedReportingOverflow(by: 1 << 20)
        guard !overflow else { throw .invalid("amount_mib \(amountMib) is too large") }
        let interval = statsPollingIntervalS ?? 0
        guard interval >= 0 else { throw .invalid("stats_polling_interval_s must not be negative") }
        try resources.setBalloon(BalloonDevice.Options(
            freePageReporting: freePageReporting ?? true, deflateOnOOM: deflateOnOom,
            statisticsInterval: interval > 0 ? .seconds(interval) : nil, targetBytes: target))
    }
}

/// PATCH /balloon: a new target.
public struct BalloonUpdateBody: Decodable, Equatable {
    public var amountMib: UInt64

    enum CodingKeys: String, CodingKey, CaseIterable { case amountMib = "amount_mib" }

    public init(from decoder: any Decoder) throws { amountMib = try decoder.onlyField(CodingKeys.amountMib, as: UInt64.self) }
}

/// PATCH /balloon/statistics: a new statistics interval, after the start. Firecracker's rule:
/// statistics cannot be turned on or off once the guest runs, only their interval changed.
public struct BalloonStatisticsUpdateBody: Decodable, Equatable {
    /// Signed as Firecracker's: a negative one is refused by the route, by name.
    public var statsPollingIntervalS: Int64

    enum CodingKeys: String, CodingKey, CaseIterable { case statsPollingIntervalS = "stats_polling_interval_s" }

    public init(from decoder: any Decoder) throws {
        statsPollingIntervalS = try decoder.onlyField(CodingKeys.statsPollingIntervalS, as: Int64.self)
    }
}

/// PATCH /drives/{drive_id}: a new backing file for a running guest's disk (Firecracker's
/// PartialDrive). Rate limiters are refused, as at PUT.
public struct DriveUpdateBody: Decodable, Equatable {
    public var driveId: String
    public var pathOnHost: String?
    public var hasRateLimiter: Bool

    enum CodingKeys: String, CodingKey, CaseIterable {
        case driveId = "drive_id", pathOnHost = "path_on_host", rateLimiter = "rate_limiter"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        driveId = try container.decode(String.self, forKey: .driveId)
        pathOnHost = try container.decodeIfPresent(String.self, forKey: .pathOnHost)
        hasRateLimiter = container.contains(.rateLimiter) && (try? container.decodeNil(forKey: .rateLimiter)) != true
    }
}

/// PUT /drives/{drive_id}; an entry of "drives" in a config file. Ebb's disks are virtio-blk on a
/// raw image with `cache=none` whatever `cache_type` says: Firecracker's "Unsafe" ignores the
/// guest's flushes and "Writeback" honours them through the host's page cache, and Ebb honours
/// them and keeps the image out of the host's page cache. The serial (GET_ID) is the drive_id.
public struct DriveBody: Decodable, Equatable {
    public var driveId: String
    public var pathOnHost: String?
    public var isRootDevice: Bool
    public var isReadOnly: Bool?
    public var partuuid: String?
    public var cacheType: String?
    public var ioEngine: String?
    public var hasRateLimiter: Bool
    public var socket: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case driveId = "drive_id", pathOnHost = "path_on_host", isRootDevice = "is_root_device", isReadOnly = "is_read_only"
        case partuuid, cacheType = "cache_type", ioEngine = "io_engine", rateLimiter = "rate_limiter", socket
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        driveId = try container.decode(String.self, forKey: .driveId)
        pathOnHost = try container.decodeIfPresent(String.self, forKey: .pathOnHost)
        isRootDevice = try container.decode(Bool.self, forKey: .isRootDevice)
        isReadOnly = try container.decodeIfPresent(Bool.self, forKey: .isReadOnly)
        partuuid = try container.decodeIfPresent(String.self, forKey: .partuuid)
        cacheType = try container.decodeIfPresent(String.self, forKey: .cacheType)
        ioEngine = try container.decodeIfPresent(String.self, forKey: .ioEngine)
        hasRateLimiter = container.contains(.rateLimiter) && (try? container.decodeNil(forKey: .rateLimiter)) != true
        socket = try container.decodeIfPresent(String.self, forKey: .socket)
    }

    public func apply(to resources: inout MachineResources) throws(ResourcesError) {
        if socket != nil { throw .invalid("drive '\(driveId)': vhost-user drives (socket) are not supported") }
        if hasRateLimiter { throw .invalid("drive '\(driveId)': rate_limiter is not supported") }
        guard let pathOnHost else { throw .invalid("drive '\(driveId)': path_on_host is missing") }
        if let cacheType, !["Unsafe", "Writeback"].contains(cacheType) {
            throw .invalid("drive '\(driveId)': cache_type '\(cacheType)' is not one of Unsafe, Writeback")
        }
        if let ioEngine, !["Sync", "Async"].contains(ioEngine) {
            throw .invalid("drive '\(driveId)': io_engine '\(ioEngine)' is not one of Sync, Async")
        }
        let serial = driveId.utf8.count <= BlockLimits.serialBytes ? driveId : nil
        try resources.putDrive(.init(id: driveId, options: BlockDevice.Options(path: pathOnHost, readOnly: isReadOnly ?? false, serial: serial),
                                     isRoot: isRootDevice, partUUID: partuuid))
    }
}

/// PUT /network-interfaces/{iface_id}; "network-interfaces" in a config file.
public struct NetworkInterfaceBody: Decodable, Equatable {
    public var ifaceId: String
    public var hostDevName: String
    public var guestMac: String?
    public var hasRateLimiter: Bool

    enum CodingKeys: String, CodingKey, CaseIterable {
        case ifaceId = "iface_id", hostDevName = "host_dev_name", guestMac = "guest_mac"
        case rxRateLimiter = "rx_rate_limiter", txRateLimiter = "tx_rate_limiter"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        ifaceId = try container.decode(String.self, forKey: .ifaceId)
        hostDevName = try container.decode(String.self, forKey: .hostDevName)
        guestMac = try container.decodeIfPresent(String.self, forKey: .guestMac)
        hasRateLimiter = [CodingKeys.rxRateLimiter, .txRateLimiter].contains { key in
            container.contains(key) && (try? container.decodeNil(forKey: key)) != true
        }
    }

    public func apply(to resources: inout MachineResources) throws(ResourcesError) {
        if hasRateLimiter { throw .invalid("network interface '\(ifaceId)': rate limiters are not supported") }
        var mac: MACAddress?
        if let guestMac {
            guard let address = MACAddress(guestMac) else { throw .invalid("network interface '\(ifaceId)': guest_mac '\(guestMac)' is not a unicast MAC address") }
            mac = address
        }
        try resources.putNetworkInterface(.init(id: ifaceId, options: NetDevice.Options(tap: hostDevName, mac: mac)))
    }
}

/// PUT /actions.
public struct ActionBody: Decodable, Equatable {
    public var actionType: String

    enum CodingKeys: String, CodingKey, CaseIterable { case actionType = "action_type" }

    public init(from decoder: any Decoder) throws { actionType = try decoder.onlyField(CodingKeys.actionType, as: String.self) }
}

/// Firecracker's `--config-file`: the same sections as the API's PUTs, in one JSON object.
public struct ConfigFile: Decodable {
    public var bootSource: BootSourceBody
    public var machineConfig: MachineConfigBody?
    public var balloon: BalloonBody?
    public var drives: [DriveBody]
    public var networkInterfaces: [NetworkInterfaceBody]
    /// Not the machine's: the front end opens them (`Observability`).
    public var logger: LoggerBody?
    public var metrics: MetricsBody?
    /// Sections Firecracker has and Ebb does not implement yet: refused when not empty.
    var unsupported: [String] = []

    enum CodingKeys: String, CodingKey, CaseIterable {
        case bootSource = "boot-source", machineConfig = "machine-config", balloon
        case drives, networkInterfaces = "network-interfaces", logger, metrics, vsock, mmdsConfig = "mmds-config"
        case entropy, cpuConfig = "cpu-config"
    }

    /// Any JSON value, to see whether an unsupported section holds anything.
    private struct Present: Decodable {
        let isEmpty: Bool
        init(from decoder: any Decoder) throws {
            if let array = try? decoder.unkeyedContainer() { isEmpty = array.count == 0; return }
            isEmpty = (try? decoder.singleValueContainer().decodeNil()) ?? false
        }
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        bootSource = try container.decode(BootSourceBody.self, forKey: .bootSource)
        machineConfig = try container.decodeIfPresent(MachineConfigBody.self, forKey: .machineConfig)
        balloon = try container.decodeIfPresent(BalloonBody.self, forKey: .balloon)
        drives = try container.decodeIfPresent([DriveBody].self, forKey: .drives) ?? []
        networkInterfaces = try container.decodeIfPresent([NetworkInterfaceBody].self, forKey: .networkInterfaces) ?? []
        logger = try container.decodeIfPresent(LoggerBody.self, forKey: .logger)
        metrics = try container.decodeIfPresent(MetricsBody.self, forKey: .metrics)
        let sections: [CodingKeys] = [.vsock, .mmdsConfig, .entropy, .cpuConfig]
        for key in sections where container.contains(key) {
            if try container.decode(Present.self, forKey: key).isEmpty == false { unsupported.append(key.stringValue) }
        }
    }

    /// Reads and decodes a config file; every problem is one line.
    public static func load(path: String) throws(BodyError) -> ConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else { throw BodyError("cannot read '\(path)'") }
        return try decode(Array(data))
    }

    /// Decodes a config file's bytes (what `load` read; the fuzz target's input).
    public static func decode(_ bytes: [UInt8]) throws(BodyError) -> ConfigFile {
        try decodeBody(ConfigFile.self, from: bytes)
    }

    /// Applies every section, in Firecracker's order: machine, balloon, drives, network
    /// interfaces, then boot source.
    public func apply(to resources: inout MachineResources) throws(ResourcesError) {
        if let first = unsupported.first { throw .invalid("'\(first)' is not supported by Ebb yet") }
        try machineConfig?.apply(to: &resources)
        if let balloon { try balloon.apply(to: &resources) } else { try resources.setBalloon(nil) }
        for drive in drives { try drive.apply(to: &resources) }
        for interface in networkInterfaces { try interface.apply(to: &resources) }
        try bootSource.apply(to: &resources)
    }
}

/// PUT /logger; "logger" in a config file. `module` (Firecracker filters by Rust module) has no
/// meaning in Ebb and is refused rather than ignored.
public struct LoggerBody: Decodable, Equatable {
    public var logPath: String?
    public var level: String?
    public var showLevel: Bool?
    public var showLogOrigin: Bool?
    public var module: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case logPath = "log_path", level, showLevel = "show_level", showLogOrigin = "show_log_origin", module
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        logPath = try container.decodeIfPresent(String.self, forKey: .logPath)
        level = try container.decodeIfPresent(String.self, forKey: .level)
        showLevel = try container.decodeIfPresent(Bool.self, forKey: .showLevel)
        showLogOrigin = try container.decodeIfPresent(Bool.self, forKey: .showLogOrigin)
        module = try container.decodeIfPresent(String.self, forKey: .module)
    }

    public init(logPath: String?, level: String? = nil, showLevel: Bool? = nil, showLogOrigin: Bool? = nil) {
        self.logPath = logPath
        self.level = level
        self.showLevel = showLevel
        self.showLogOrigin = showLogOrigin
    }

    public func settings() throws(BodyError) -> LoggerSettings {
        if module != nil { throw BodyError("module is not supported: Ebb's log has no modules to filter by") }
        guard let logPath else { throw BodyError("log_path is missing (Ebb's messages go to stderr without one)") }
        var level: LogLevel? = .info
        if let name = self.level {
            guard let parsed = LogLevel.parse(name) else {
                throw BodyError("level '\(name)' is not one of Error, Warning, Info, Debug, Trace, Off")
            }
            level = parsed
        }
        return LoggerSettings(path: logPath, level: level, showLevel: showLevel ?? false, showOrigin: showLogOrigin ?? false)
    }
}

/// PUT /metrics; "metrics" in a config file.
public struct MetricsBody: Decodable, Equatable {
    public var metricsPath: String

    enum CodingKeys: String, CodingKey, CaseIterable { case metricsPath = "metrics_path" }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        metricsPath = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .metricsPath)
    }
}

/// PATCH /vm: `{"state": "Paused"}` or `{"state": "Resumed"}`.
public struct VMStateBody: Decodable, Equatable {
    public var state: String

    enum CodingKeys: String, CodingKey, CaseIterable { case state }

    public init(from decoder: any Decoder) throws { state = try decoder.onlyField(CodingKeys.state, as: String.self) }
}
