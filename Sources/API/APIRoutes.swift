import FoundationEssentials
import Virtio
import VMM

/// What the API can see and change of a running machine; `Machine` provides it, tests fake it.
public protocol MachineControl: Sendable {
    var configuration: MachineConfiguration { get }
    var balloonCounters: BalloonCounters? { get }
    var balloonActualBytes: UInt64? { get }
    var balloonTargetBytes: UInt64? { get }
    var balloonOptions: BalloonDevice.Options? { get }
    /// The agentless reclaim's state, nil when it is off.
    var reclaimStatus: ReclaimStatus? { get }
    /// The disks in slot order, for the metrics.
    var disks: [DiskStatus] { get }
    /// The network interfaces in slot order, for the metrics.
    var networkInterfaces: [NetworkInterfaceStatus] { get }
    func setBalloonTarget(bytes: UInt64)
    /// PATCH /balloon/statistics: statistics every `interval` from now on, the first at once.
    func setBalloonStatisticsInterval(_ interval: Duration) throws
    /// PATCH /drives/{id}: the `index`-th disk (slot order) gets a new backing file.
    func replaceDiskImage(index: Int, path: String) throws(DiskReplaceError)
    /// PATCH /vm: the vCPUs stopped between two exits, and going again.
    var isPaused: Bool { get }
    func pause() throws(PauseError)
    func resume()
    /// PUT /actions SendCtrlAltDel: the keys typed on the guest's i8042 keyboard.
    func sendCtrlAltDel()
}

extension Machine: MachineControl {
    public var balloonOptions: BalloonDevice.Options? {
        configuration.balloon.map { options in
            var options = options
            options.statisticsInterval = balloonStatisticsInterval
            return options
        }
    }
}

/// One API response: status code and JSON body (empty for 204).
public struct APIResponse: Equatable, Sendable {
    public let status: Int
    public let body: String

    static func json<T: Encodable>(_ value: T, status: Int = 200) -> APIResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return APIResponse(status: 500, body: "{}") }
        return APIResponse(status: status, body: String(decoding: data, as: UTF8.self))
    }

    static let noContent = APIResponse(status: 204, body: "")

    /// Firecracker's error shape: {"fault_message": "..."}.
    static func error(_ status: Int, _ message: String) -> APIResponse {
        struct Fault: Encodable {
            let faultMessage: String
            enum CodingKeys: String, CodingKey { case faultMessage = "fault_message" }
        }
        return json(Fault(faultMessage: message), status: status)
    }
}

/// The routes, following Firecracker's API where it has one: `GET/PATCH /balloon`,
/// `GET /balloon/statistics`, `GET /machine-config`, and `GET /` for instance information. They
/// answer before the machine exists too, from its configuration.
public struct APIRoutes: Sendable {
    let control: ControlPlane
    /// The logger, the metrics and the request counters; `instanceID` is what `GET /` answers
    /// as `id` (Firecracker's `--id`).
    let observability: Observability
    var instanceID: String { observability.instanceID }
    static let mebibyte: UInt64 = 1 << 20
    /// Request bodies larger than this are refused before parsing.
    public static let maximumBodyBytes = 64 * 1024

    public init(control: ControlPlane, observability: Observability) {
        self.control = control
        self.observability = observability
    }
    public init(control: ControlPlane, instanceID: String = "ebb") {
        self.init(control: control, observability: Observability(control: control, instanceID: instanceID))
    }
    public init(machine: any MachineControl) { self.init(control: ControlPlane(running: machine)) }

    struct InstanceInfo: Encodable {
        let id: String, state: String, vmmVersion: String, appName: String
        enum CodingKeys: String, CodingKey { case id, state, vmmVersion = "vmm_version", appName = "app_name" }
    }
    /// Firecracker's machine configuration fields that mean the same in Ebb.
    struct MachineConfig: Encodable {
        let vcpuCount: Int, memSizeMib: UInt64, smt: Bool, trackDirtyPages: Bool
        enum CodingKeys: String, CodingKey {
            case vcpuCount = "vcpu_count", memSizeMib = "mem_size_mib", smt, trackDirtyPages = "track_dirty_pages"
        }
    }
    struct BalloonConfig: Encodable {
        let amountMib: UInt64, deflateOnOom: Bool, statsPollingIntervalS: Int
        enum CodingKeys: String, CodingKey {
            case amountMib = "amount_mib", deflateOnOom = "deflate_on_oom", statsPollingIntervalS = "stats_polling_interval_s"
        }
    }
    struct IdleReclaim: Encodable {
        let state: String, squeezes: UInt64, freePagesSqueezes: UInt64, squeezedBytes: UInt64, floorMib: UInt64, intervalS: Double
        let aborts: [String: UInt64], backOffs: [String: UInt64]
        enum CodingKeys: String, CodingKey {
            case state, squeezes, freePagesSqueezes = "free_pages_squeezes", squeezedBytes = "squeezed_bytes", floorMib = "floor_mib", intervalS = "interval_s"
            case aborts, backOffs = "back_offs"
        }

        init(_ status: ReclaimStatus) {
            state = status.state.rawValue
            squeezes = status.counters.squeezes
            freePagesSqueezes = status.counters.freePagesSqueezes
            squeezedBytes = status.counters.squeezedBytes
            floorMib = status.floorBytes >> 20
            intervalS = Double(status.interval.components.seconds) + Double(status.interval.components.attoseconds) / 1e18
            aborts = Dictionary(uniqueKeysWithValues: status.counters.aborts.map { ($0.key.rawValue, $0.value) })
            backOffs = Dictionary(uniqueKeysWithValues: status.counters.backOffs.map { ($0.key.rawValue, $0.value) })
        }
    }

    struct BalloonStatistics: Encodable {
        let targetPages: UInt64, actualPages: UInt64, targetMib: UInt64, actualMib: UInt64
        let freePageReports: UInt64, reportedBytes: UInt64, discardedBytes: UInt64, discardFailures: UInt64
        let inflatedPages: UInt64, deflatedPages: UInt64
        let freeMemory: UInt64?, totalMemory: UInt64?, availableMemory: UInt64?, diskCaches: UInt64?
        let swapIn: UInt64?, swapOut: UInt64?, majorFaults: UInt64?, minorFaults: UInt64?
        let oomKill: UInt64?, allocStall: UInt64?
        /// Ebb's own: the agentless reclaim, and what free page reporting gave back.
        let idleReclaim: IdleReclaim?
        let reportReturnedBytes: UInt64
        enum CodingKeys: String, CodingKey {
            case targetPages = "target_pages", actualPages = "actual_pages", targetMib = "target_mib", actualMib = "actual_mib"
            case freePageReports = "free_page_reports", reportedBytes = "reported_bytes", discardedBytes = "discarded_bytes"
            case discardFailures = "discard_failures", inflatedPages = "inflated_pages", deflatedPages = "deflated_pages"
            case freeMemory = "free_memory", totalMemory = "total_memory", availableMemory = "available_memory", diskCaches = "disk_caches"
            case swapIn = "swap_in", swapOut = "swap_out", majorFaults = "major_faults", minorFaults = "minor_faults"
            case oomKill = "oom_kill", allocStall = "alloc_stall", idleReclaim = "idle_reclaim"
            case reportReturnedBytes = "report_returned_bytes"
        }
    }

    /// Firecracker's endpoints for features Ebb does not have: a request to one is refused with
    /// the feature's name, never answered as if it had been done.
    static let unsupportedFeatures: [(prefix: String, feature: String)] = [
        ("/vsock", "vsock devices"), ("/mmds", "the microVM metadata service (MMDS)"),
        ("/snapshot", "snapshots"), ("/cpu-config", "custom CPU templates"), ("/entropy", "virtio-rng (entropy)"),
        ("/pmem", "virtio-pmem"), ("/hotplug", "memory hotplug"), ("/serial", "serial output redirection"),
    ]

    struct Version: Encodable {
        let firecrackerVersion: String
        enum CodingKeys: String, CodingKey { case firecrackerVersion = "firecracker_version" }
    }

    /// What `GET /version` and `GET /` answer as the VMM's version.
    static let version = "0.1.0"

    /// Answers one request and counts it (Firecracker's `*_api_requests` metrics).
    public func handle(method: String, path: String, body: [UInt8]) -> APIResponse {
        let response = answer(method: method, path: path, body: body)
        observability.requests.count(method: method, path: path, failed: response.status >= 400)
        return response
    }

    private func answer(method: String, path: String, body: [UInt8]) -> APIResponse {
        guard body.count <= Self.maximumBodyBytes else { return .error(413, "request body too large") }
        if let unsupported = Self.unsupportedFeatures.first(where: { path == $0.prefix || path.hasPrefix($0.prefix + "/") }) {
            return .error(400, "Ebb does not implement \(unsupported.feature) (\(method) \(path))")
        }
        switch (method, path) {
        case ("GET", "/version"):
            return .json(Version(firecrackerVersion: Self.version))
        case ("GET", "/"):
            let state = control.machine.map { $0.isPaused ? "Paused" : "Running" } ?? "Not started"
            return .json(InstanceInfo(id: instanceID, state: state, vmmVersion: Self.version, appName: "ebb"))
        case ("GET", "/machine-config"):
            let (cpus, memory) = control.machine.map { ($0.configuration.cpuCount, $0.configuration.memoryBytes) }
                ?? (control.resources.cpuCount, control.resources.memoryBytes)
            return .json(MachineConfig(vcpuCount: cpus, memSizeMib: memory / Self.mebibyte, smt: false, trackDirtyPages: false))
        case ("PUT", "/machine-config"):
            // Before the start, through the same setters as the command line and the config file
            // (after it, `configure` answers Firecracker's phase message).
            return configure(MachineConfigBody.self, body) { $0.apply(to:) }
        case ("PATCH", "/machine-config") where control.phase == .configuring:
            return configure(MachineConfigBody.self, body) { $0.apply(to:) }
        case ("PUT", "/boot-source") where control.phase == .configuring:
            return configure(BootSourceBody.self, body) { $0.apply(to:) }
        case ("PUT", "/balloon") where control.phase == .configuring:
            return configure(BalloonBody.self, body) { $0.apply(to:) }
        case ("PUT", "/logger") where control.phase == .configuring:
            do { try observability.configureLogger(decodeBody(LoggerBody.self, from: body).settings()) } catch { return .error(400, "\(error)") }
            return .noContent
        case ("PUT", "/metrics") where control.phase == .configuring:
            do { try observability.configureMetrics(path: decodeBody(MetricsBody.self, from: body).metricsPath) } catch { return .error(400, "\(error)") }
            return .noContent
        case ("GET", "/vm/config"):
            return .json(VMConfigResponse(resources: control.resources, balloonTargetBytes: control.machine?.balloonTargetBytes,
                                          logger: observability.loggerSettings, metricsPath: observability.metrics.path))
        case ("PUT", "/actions"):
            return action(body)
        case ("PATCH", _) where path.hasPrefix(Self.networkInterfacesPrefix):
            return .error(400, "Ebb has no rate limiters to change (PATCH \(path))")
        case ("PUT", _) where path.hasPrefix(Self.networkInterfacesPrefix):
            // After the start, `configure` answers Firecracker's phase message.
            let id = String(path.dropFirst(Self.networkInterfacesPrefix.count))
            guard !id.isEmpty, !id.contains("/") else { return .error(404, "no such resource: \(path)") }
            return configure(NetworkInterfaceBody.self, body) { interface in
                { (resources: inout MachineResources) throws(ResourcesError) in
                    guard interface.ifaceId == id else { throw .invalid("the body's iface_id '\(interface.ifaceId)' is not the path's '\(id)'") }
                    try interface.apply(to: &resources)
                }
            }
        case ("PUT", _) where path.hasPrefix(Self.drivesPrefix) && control.phase == .configuring:
            let id = String(path.dropFirst(Self.drivesPrefix.count))
            guard !id.isEmpty, !id.contains("/") else { return .error(404, "no such resource: \(path)") }
            return configure(DriveBody.self, body) { drive in
                { (resources: inout MachineResources) throws(ResourcesError) in
                    guard drive.driveId == id else { throw .invalid("the body's drive_id '\(drive.driveId)' is not the path's '\(id)'") }
                    try drive.apply(to: &resources)
                }
            }
        default:
            break
        }
        guard let machine = control.machine else {
            let known = Self.knownPaths.contains(path) || (method == "PATCH" && path.hasPrefix(Self.drivesPrefix))
            return known ? .error(400, ControlError.beforeStart.description) : .error(404, "no such resource: \(path)")
        }
        return handleRunning(method: method, path: path, body: body, machine: machine)
    }

    static let knownPaths: Set<String> = ["/", "/balloon", "/balloon/statistics", "/machine-config", "/boot-source", "/logger", "/metrics", "/vm"]

    /// PUT /actions: InstanceStart hands the configuration to the thread that builds the machine.
    private func action(_ bytes: [UInt8]) -> APIResponse {
        let body: ActionBody
        do { body = try decodeBody(ActionBody.self, from: bytes) } catch { return .error(400, error.description) }
        switch body.actionType {
        case "InstanceStart":
            do { try control.requestStart() } catch { return .error(400, error.description) }
            return .noContent
        case "FlushMetrics":
            guard observability.metrics.flush() else { return .error(400, "metrics are not configured (PUT /metrics first)") }
            return .noContent
        case "SendCtrlAltDel":
            guard let machine = control.machine else { return .error(400, ControlError.beforeStart.description) }
            machine.sendCtrlAltDel()
            return .noContent
        default:
            return .error(400, "action_type '\(body.actionType)' is not one of InstanceStart, SendCtrlAltDel, FlushMetrics")
        }
    }
    static let drivesPrefix = "/drives/"
    static let networkInterfacesPrefix = "/network-interfaces/"

    /// Decodes a pre-boot body and applies it to the resources: 204, or 400 saying why.
    private func configure<Body: Decodable>(_ type: Body.Type, _ bytes: [UInt8],
                                            _ change: (Body) -> (inout MachineResources) throws(ResourcesError) -> Void) -> APIResponse {
        do {
            let body = try decodeBody(type, from: bytes)
            let apply = change(body)
            try control.configure { resources throws(ResourcesError) in try apply(&resources) }
            return .noContent
        } catch let error as BodyError {
            return .error(400, error.description)
        } catch {
            return .error(400, "\(error)")
        }
    }

    private func handleRunning(method: String, path: String, body: [UInt8], machine: any MachineControl) -> APIResponse {
        switch (method, path) {
        case ("PUT", "/boot-source"), ("PUT", "/balloon"), ("PUT", "/logger"), ("PUT", "/metrics"):
            return .error(400, ControlError.afterStart.description)
        case ("PUT", "/machine-config"), ("PATCH", "/machine-config"):
            return .error(400, "the machine is configured on ebb's command line before it boots; it cannot change while it runs")
        case ("GET", "/balloon"):
            guard let options = machine.balloonOptions else { return .error(400, "no balloon device: start ebb with --balloon on") }
            let interval = options.statisticsInterval.map { Int($0.components.seconds) }
            return .json(BalloonConfig(amountMib: (machine.balloonTargetBytes ?? 0) / Self.mebibyte,
                                       deflateOnOom: options.deflateOnOOM, statsPollingIntervalS: interval ?? 0))
        case ("PATCH", "/balloon"):
            guard machine.balloonOptions != nil else { return .error(400, "no balloon device: start ebb with --balloon on") }
            let update: BalloonUpdateBody
            do { update = try decodeBody(BalloonUpdateBody.self, from: body) } catch {
                return .error(400, "\(error.description); expected {\"amount_mib\": <integer>}")
            }
            let memory = machine.configuration.memoryBytes
            let (bytes, overflow) = update.amountMib.multipliedReportingOverflow(by: Self.mebibyte)
            guard !overflow, bytes <= memory else {
                return .error(400, "amount_mib \(update.amountMib) is more than the guest's \(memory / Self.mebibyte) MiB of memory")
            }
            machine.setBalloonTarget(bytes: bytes)
            return .noContent
        case ("GET", "/balloon/statistics"):
            guard let counters = machine.balloonCounters else { return .error(400, "no balloon device: start ebb with --balloon on") }
            let target = machine.balloonTargetBytes ?? 0
            let actual = machine.balloonActualBytes ?? 0
            let stat = { (tag: BalloonStatTag) in counters.guestStatistics[tag.rawValue] }
            return .json(BalloonStatistics(
                targetPages: target / BalloonLimits.pageBytes, actualPages: actual / BalloonLimits.pageBytes,
                targetMib: target / Self.mebibyte, actualMib: actual / Self.mebibyte,
                freePageReports: counters.reportedRanges, reportedBytes: counters.reportedBytes,
                discardedBytes: counters.discardedBytes + counters.inflateDiscardedBytes, discardFailures: counters.discardFailures,
                inflatedPages: counters.inflatedPages, deflatedPages: counters.deflatedPages,
                freeMemory: stat(.freeMemory), totalMemory: stat(.totalMemory), availableMemory: stat(.availableMemory),
                diskCaches: stat(.diskCaches), swapIn: stat(.swapIn), swapOut: stat(.swapOut),
                majorFaults: stat(.majorFaults), minorFaults: stat(.minorFaults),
                oomKill: stat(.oomKills), allocStall: stat(.allocationStalls),
                idleReclaim: machine.reclaimStatus.map(IdleReclaim.init), reportReturnedBytes: counters.reportReturnedBytes))
        case ("PATCH", "/balloon/statistics"):
            return changeStatisticsInterval(body, machine: machine)
        case ("PATCH", _) where path.hasPrefix(Self.drivesPrefix):
            return replaceDrive(id: String(path.dropFirst(Self.drivesPrefix.count)), body, machine: machine)
        case ("PATCH", "/vm"):
            let update: VMStateBody
            do { update = try decodeBody(VMStateBody.self, from: body) } catch { return .error(400, "\(error.description); expected {\"state\": \"Paused\" or \"Resumed\"}") }
            switch update.state {
            case "Paused":
                do { try machine.pause() } catch { return .error(400, "cannot pause: \(error)") }
            case "Resumed":
                machine.resume()
            default:
                return .error(400, "state '\(update.state)' is not one of Paused, Resumed")
            }
            return .noContent
        case ("PUT", _) where path.hasPrefix(Self.drivesPrefix):
            return .error(400, "drives are configured before the machine boots; Ebb does not change them while it runs yet")
        case (_, "/"), (_, "/balloon"), (_, "/balloon/statistics"), (_, "/machine-config"):
            return .error(405, "\(method) is not allowed on \(path)")
        default:
            return .error(404, "no such resource: \(path)")
        }
    }

    /// PATCH /balloon/statistics, by Firecracker's rule: the interval changes, but statistics that
    /// were off at the start stay off and those that were on stay on.
    private func changeStatisticsInterval(_ bytes: [UInt8], machine: any MachineControl) -> APIResponse {
        guard let options = machine.balloonOptions else { return .error(400, "no balloon device: start ebb with --balloon on") }
        let update: BalloonStatisticsUpdateBody
        do { update = try decodeBody(BalloonStatisticsUpdateBody.self, from: bytes) } catch {
            return .error(400, "\(error.description); expected {\"stats_polling_interval_s\": <seconds>}")
        }
        let seconds = update.statsPollingIntervalS
        guard (0...Self.maximumStatisticsSeconds).contains(seconds) else {
            return .error(400, "stats_polling_interval_s \(seconds) is out of range (0 to \(Self.maximumStatisticsSeconds))")
        }
        switch (options.statisticsInterval != nil, seconds > 0) {
        case (false, false): return .noContent
        case (false, true): return .error(400, "the balloon's statistics were off at the start and cannot be turned on while the guest runs")
        case (true, false): return .error(400, "the balloon's statistics cannot be turned off while the guest runs (stats_polling_interval_s 0)")
        case (true, true): break
        }
        do { try machine.setBalloonStatisticsInterval(.seconds(seconds)) } catch { return .error(400, "cannot change the statistics interval: \(error)") }
        control.recordChange { resources in
            guard var balloon = resources.balloon else { return }
            balloon.statisticsInterval = .seconds(seconds)
            try? resources.setBalloon(balloon)
        }
        return .noContent
    }
    static let maximumStatisticsSeconds: Int64 = 3600

    /// PATCH /drives/{id}: a running guest's disk gets a new backing file (the disk keeps its
    /// read-only and cache settings); the guest hears of its new capacity by a config interrupt.
    private func replaceDrive(id: String, _ bytes: [UInt8], machine: any MachineControl) -> APIResponse {
        let update: DriveUpdateBody
        do { update = try decodeBody(DriveUpdateBody.self, from: bytes) } catch { return .error(400, error.description) }
        guard update.driveId == id else { return .error(400, "the body's drive_id '\(update.driveId)' is not the path's '\(id)'") }
        guard !update.hasRateLimiter else { return .error(400, "Ebb has no rate limiters (rate_limiter in PATCH /drives/\(id))") }
        let drives = control.resources.orderedDrives
        guard let index = drives.indices.first(where: { (drives[$0].id ?? guestDiskName($0)) == id }) else {
            return .error(400, "no drive '\(id)'")
        }
        guard let path = update.pathOnHost else { return .noContent }
        guard !path.isEmpty else { return .error(400, "path_on_host is empty") }
        do throws(DiskReplaceError) { try machine.replaceDiskImage(index: index, path: path) } catch { return .error(400, error.description) }
        control.recordChange { $0.recordDrivePath(orderedIndex: index, path: path) }
        return .noContent
    }
}
