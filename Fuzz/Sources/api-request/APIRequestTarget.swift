import API
import Foundation
import FuzzSupport
import Synchronization
import Virtio
import VMM

/// One API request as a client sends it (method, path, JSON body) to the routes, before the start
/// (configuring a machine) or after it (a running machine the API reads and patches). Every
/// answer is a status Firecracker's clients know, with an empty body for 204 and JSON otherwise.
///
/// The input is: a byte choosing the phase and the method, the path up to a newline, the body.
/// `PUT /logger` and `PUT /metrics` open files the body names, so their bodies are only decoded.
final class RunningMachine: MachineControl, Sendable {
    let configuration = MachineConfiguration(kernelPath: "/nonexistent/vmlinux", memoryBytes: 256 << 20, cpuCount: 1)
    let balloonOptions: BalloonDevice.Options? = BalloonDevice.Options(statisticsInterval: .seconds(1))
    var balloonCounters: BalloonCounters? {
        var counters = BalloonCounters()
        counters.guestStatistics[BalloonStatTag.freeMemory.rawValue] = 64 << 20
        return counters
    }
    var balloonActualBytes: UInt64? { target.withLock { $0 } }
    var balloonTargetBytes: UInt64? { target.withLock { $0 } }
    var reclaimStatus: ReclaimStatus? { nil }
    var disks: [DiskStatus] { [] }
    var networkInterfaces: [NetworkInterfaceStatus] { [] }
    var isPaused: Bool { paused.withLock { $0 } }
    private let target = Mutex<UInt64>(0)
    private let paused = Mutex(false)
    func setBalloonTarget(bytes: UInt64) {
        precondition(bytes <= configuration.memoryBytes, "the API set a balloon target larger than the guest")
        target.withLock { $0 = bytes }
    }
    func setBalloonStatisticsInterval(_ interval: Duration) {
        precondition(interval > .zero && interval <= .seconds(3600), "the API set a statistics interval out of range")
    }
    func replaceDiskImage(index: Int, path: String) throws(DiskReplaceError) {
        precondition(!path.isEmpty, "the API replaced a disk with an empty path")
        throw .noSuchDisk(index: index)
    }
    func pause() throws(PauseError) { paused.withLock { $0 = true } }
    func resume() { paused.withLock { $0 = false } }
    func sendCtrlAltDel() {}
}

let methods = ["GET", "PUT", "PATCH", "POST", "DELETE", "HEAD"]
let knownStatuses: Set<Int> = [200, 204, 400, 404, 405, 413, 500, 503]

func fuzzAPIRequest(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    var input = FuzzInput(start, count)
    let choice = input.byte()
    let method = methods[Int(choice % UInt8(methods.count))]
    let path = String(decoding: input.bytes(until: UInt8(ascii: "\n")), as: UTF8.self)
    let body = input.rest()
    if method == "PUT", path == "/logger" || path == "/metrics" {
        _ = try? JSONDecoder().decode(LoggerBody.self, from: Data(body))
        _ = try? JSONDecoder().decode(MetricsBody.self, from: Data(body))
        return 0
    }
    let control = choice & 0x80 == 0 ? ControlPlane(resources: MachineResources()) : ControlPlane(running: RunningMachine())
    let routes = APIRoutes(control: control)
    let response = routes.handle(method: method, path: path, body: body)
    precondition(knownStatuses.contains(response.status), "status \(response.status)")
    if response.status == 204 {
        precondition(response.body.isEmpty, "a 204 with a body")
    } else {
        precondition((try? JSONSerialization.jsonObject(with: Data(response.body.utf8))) != nil, "not JSON: \(response.body)")
    }
    return 0
}
