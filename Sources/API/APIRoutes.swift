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
    func setBalloonTarget(bytes: UInt64)
}

extension Machine: MachineControl {
    public var balloonOptions: BalloonDevice.Options? { configuration.balloon }
}

/// One API response: status code and JSON body (empty for 204).
public struct APIResponse: Equatable, Sendable {
    public let status: Int
    public let body: String

    static func json<T: Encodable>(_ value: T, status: Int = 200) -> APIResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(value) else { return APIResponse(status: 500, body: "{}") }
        return APIResponse(status: status, body: String(decoding: data, as: UTF8.self))
    }

    static let noContent = APIResponse(status: 204, body: "")

    /// Firecracker's error shape: {"fault_message": "..."}.
    static func error(_ status: Int, _ message: String) -> APIResponse {
        struct Fault: Encodable { let fault_message: String }
        return json(Fault(fault_message: message), status: status)
    }
}

/// The routes, following Firecracker's API where it has one: `GET/PATCH /balloon`,
/// `GET /balloon/statistics`, `GET /machine-config`, and `GET /` for instance information.
public struct APIRoutes: Sendable {
    let machine: any MachineControl
    static let mebibyte: UInt64 = 1 << 20
    /// Request bodies larger than this are refused before parsing.
    public static let maximumBodyBytes = 64 * 1024

    public init(machine: any MachineControl) { self.machine = machine }

    struct InstanceInfo: Encodable { let id: String; let state: String; let vmm_version: String; let app_name: String }
    /// Firecracker's machine configuration fields that mean the same in Ebb.
    struct MachineConfig: Encodable { let vcpu_count: Int; let mem_size_mib: UInt64; let smt: Bool; let track_dirty_pages: Bool }
    struct BalloonConfig: Codable { let amount_mib: UInt64; let deflate_on_oom: Bool?; let stats_polling_interval_s: Int? }
    struct BalloonUpdate: Decodable { let amount_mib: UInt64 }
    struct BalloonStatistics: Encodable {
        let target_pages: UInt64, actual_pages: UInt64, target_mib: UInt64, actual_mib: UInt64
        let free_page_reports: UInt64, reported_bytes: UInt64, discarded_bytes: UInt64, discard_failures: UInt64
        let inflated_pages: UInt64, deflated_pages: UInt64
        let free_memory: UInt64?, total_memory: UInt64?, available_memory: UInt64?, disk_caches: UInt64?
        let swap_in: UInt64?, swap_out: UInt64?, major_faults: UInt64?, minor_faults: UInt64?
    }

    public func handle(method: String, path: String, body: [UInt8]) -> APIResponse {
        guard body.count <= Self.maximumBodyBytes else { return .error(413, "request body too large") }
        switch (method, path) {
        case ("GET", "/"):
            return .json(InstanceInfo(id: "ebb", state: "Running", vmm_version: "0.1.0", app_name: "ebb"))
        case ("GET", "/machine-config"):
            let configuration = machine.configuration
            return .json(MachineConfig(vcpu_count: configuration.cpuCount, mem_size_mib: configuration.memoryBytes / Self.mebibyte,
                                       smt: false, track_dirty_pages: false))
        case ("PUT", "/machine-config"), ("PATCH", "/machine-config"):
            return .error(400, "the machine is configured on ebb's command line before it boots; it cannot change while it runs")
        case ("GET", "/balloon"):
            guard let options = machine.balloonOptions else { return .error(400, "no balloon device: start ebb with --balloon on") }
            let interval = options.statisticsInterval.map { Int($0.components.seconds) }
            return .json(BalloonConfig(amount_mib: (machine.balloonTargetBytes ?? 0) / Self.mebibyte,
                                       deflate_on_oom: options.deflateOnOOM, stats_polling_interval_s: interval ?? 0))
        case ("PATCH", "/balloon"):
            guard machine.balloonOptions != nil else { return .error(400, "no balloon device: start ebb with --balloon on") }
            guard let update = try? JSONDecoder().decode(BalloonUpdate.self, from: Data(body)) else {
                return .error(400, "expected {\"amount_mib\": <integer>}")
            }
            let (bytes, overflow) = update.amount_mib.multipliedReportingOverflow(by: Self.mebibyte)
            guard !overflow, bytes <= UInt64(UInt32.max) * BalloonLimits.pageBytes else {
                return .error(400, "amount_mib \(update.amount_mib) is too large")
            }
            machine.setBalloonTarget(bytes: bytes)
            return .noContent
        case ("GET", "/balloon/statistics"):
            guard let counters = machine.balloonCounters else { return .error(400, "no balloon device: start ebb with --balloon on") }
            let target = machine.balloonTargetBytes ?? 0
            let actual = machine.balloonActualBytes ?? 0
            let stat = { (tag: BalloonStatTag) in counters.guestStatistics[tag.rawValue] }
            return .json(BalloonStatistics(
                target_pages: target / BalloonLimits.pageBytes, actual_pages: actual / BalloonLimits.pageBytes,
                target_mib: target / Self.mebibyte, actual_mib: actual / Self.mebibyte,
                free_page_reports: counters.reportedRanges, reported_bytes: counters.reportedBytes,
                discarded_bytes: counters.discardedBytes + counters.inflateDiscardedBytes, discard_failures: counters.discardFailures,
                inflated_pages: counters.inflatedPages, deflated_pages: counters.deflatedPages,
                free_memory: stat(.freeMemory), total_memory: stat(.totalMemory), available_memory: stat(.availableMemory),
                disk_caches: stat(.diskCaches), swap_in: stat(.swapIn), swap_out: stat(.swapOut),
                major_faults: stat(.majorFaults), minor_faults: stat(.minorFaults)))
        case (_, "/"), (_, "/balloon"), (_, "/balloon/statistics"), (_, "/machine-config"):
            return .error(405, "\(method) is not allowed on \(path)")
        default:
            return .error(404, "no such resource: \(path)")
        }
    }
}
