import Synchronization
import Testing
import Virtio
import VMM
@testable import API

/// A balloon whose target the routes can set, with no VM behind it.
final class FakeBalloon: MachineControl, Sendable {
    let configuration = MachineConfiguration(kernelPath: "/boot/vmlinux", memoryBytes: 768 << 20, cpuCount: 2)
    private let target = Mutex<UInt64>(0)
    private let statisticsInterval = Mutex<Duration?>(.seconds(2))
    var balloonOptions: BalloonDevice.Options? { BalloonDevice.Options(statisticsInterval: statisticsInterval.withLock { $0 }) }
    func setBalloonStatisticsInterval(_ interval: Duration) { statisticsInterval.withLock { $0 = interval } }
    func turnStatisticsOff() { statisticsInterval.withLock { $0 = nil } }
    private let replacedDisks = Mutex<[Int: String]>([:])
    var replacedDiskPaths: [Int: String] { replacedDisks.withLock { $0 } }
    func replaceDiskImage(index: Int, path: String) throws(DiskReplaceError) {
        guard index < 2 else { throw .noSuchDisk(index: index) }
        replacedDisks.withLock { $0[index] = path }
    }
    var balloonCounters: BalloonCounters? {
        var counters = BalloonCounters()
        counters.reportedRanges = 3
        counters.guestStatistics[BalloonStatTag.freeMemory.rawValue] = 1234
        return counters
    }
    var balloonActualBytes: UInt64? { 8 << 20 }
    var reclaimStatus: ReclaimStatus? {
        var counters = ReclaimCounters()
        counters.squeezes = 3
        counters.freePagesSqueezes = 2
        return ReclaimStatus(state: .idle, counters: counters, floorBytes: 4 << 20, interval: .seconds(5))
    }
    var disks: [DiskStatus] { [] }
    var networkInterfaces: [NetworkInterfaceStatus] { [] }
    private let paused = Mutex(false)
    var isPaused: Bool { paused.withLock { $0 } }
    func pause() throws(PauseError) { paused.withLock { $0 = true } }
    func resume() { paused.withLock { $0 = false } }
    private let ctrlAltDels = Mutex(0)
    var ctrlAltDelCount: Int { ctrlAltDels.withLock { $0 } }
    func sendCtrlAltDel() { ctrlAltDels.withLock { $0 += 1 } }
    var balloonTargetBytes: UInt64? { target.withLock { $0 } }
    func setBalloonTarget(bytes: UInt64) { target.withLock { $0 = bytes } }
}

@Suite struct APIRoutesTests {
    let balloon = FakeBalloon()
    var routes: APIRoutes { APIRoutes(machine: balloon) }

    @Test func patchSetsTheTargetAndGetReadsItBack() {
        #expect(routes.handle(method: "PATCH", path: "/balloon", body: Array(#"{"amount_mib": 256}"#.utf8)) == .noContent)
        #expect(balloon.balloonTargetBytes == 256 << 20)
        let response = routes.handle(method: "GET", path: "/balloon", body: [])
        #expect(response.status == 200)
        #expect(response.body == #"{"amount_mib":256,"deflate_on_oom":true,"stats_polling_interval_s":2}"#)
    }

    @Test func machineConfigFollowsFirecrackersShapeAndIsReadOnly() {
        let response = routes.handle(method: "GET", path: "/machine-config", body: [])
        #expect(response.status == 200)
        #expect(response.body == #"{"mem_size_mib":768,"smt":false,"track_dirty_pages":false,"vcpu_count":2}"#)
        let change = routes.handle(method: "PUT", path: "/machine-config", body: Array(#"{"vcpu_count": 4}"#.utf8))
        #expect(change.status == 400 && change.body.contains("fault_message"))
        #expect(routes.handle(method: "DELETE", path: "/machine-config", body: []).status == 405)
    }

    @Test func statisticsIncludeReportsAndGuestValues() {
        let response = routes.handle(method: "GET", path: "/balloon/statistics", body: [])
        #expect(response.status == 200)
        #expect(response.body.contains(#""free_page_reports":3"#))
        #expect(response.body.contains(#""free_memory":1234"#))
        #expect(response.body.contains(#""actual_mib":8"#))
        #expect(response.body.contains(#""squeezes":3"#) && response.body.contains(#""free_pages_squeezes":2"#), "\(response.body)")
    }

    @Test func badRequestsGetFirecrackerStyleFaults() {
        let bad = routes.handle(method: "PATCH", path: "/balloon", body: Array("{\"amount_mib\": -1}".utf8))
        #expect(bad.status == 400 && bad.body.contains("fault_message"))
        #expect(routes.handle(method: "PATCH", path: "/balloon", body: Array("not json".utf8)).status == 400)
        #expect(routes.handle(method: "PATCH", path: "/balloon", body: Array(#"{"amount_mib": 18446744073709551615}"#.utf8)).status == 400)
        #expect(routes.handle(method: "DELETE", path: "/balloon", body: []).status == 405)
        #expect(routes.handle(method: "GET", path: "/nothing", body: []).status == 404)
        #expect(routes.handle(method: "PATCH", path: "/balloon", body: [UInt8](repeating: 0x20, count: 100_000)).status == 413)
        #expect(balloon.balloonTargetBytes == 0)
    }

    /// Firecracker's bodies deny unknown fields, and a target above the guest's memory would
    /// squeeze it to nothing: both are refused with the reason.
    @Test func unknownFieldsAndTargetsAboveGuestMemoryAreRefused() {
        let unknown = routes.handle(method: "PATCH", path: "/balloon", body: Array(#"{"amount_mib": 1, "amount": 2}"#.utf8))
        #expect(unknown.status == 400 && unknown.body.contains("unknown field 'amount'"), "\(unknown.body)")
        let tooLarge = routes.handle(method: "PATCH", path: "/balloon", body: Array(#"{"amount_mib": 1024}"#.utf8))
        #expect(tooLarge.status == 400 && tooLarge.body.contains("768 MiB"), "\(tooLarge.body)")
        #expect(routes.handle(method: "PATCH", path: "/balloon", body: Array(#"{"amount_mib": 768}"#.utf8)) == .noContent)
        #expect(balloon.balloonTargetBytes == 768 << 20)
    }

    @Test func patchVMPausesAndResumesAndGetSaysSo() {
        let patch = { (body: String) in routes.handle(method: "PATCH", path: "/vm", body: Array(body.utf8)) }
        #expect(patch(#"{"state": "Paused"}"#) == .noContent)
        #expect(routes.handle(method: "GET", path: "/", body: []).body.contains(#""state":"Paused""#))
        #expect(patch(#"{"state": "Resumed"}"#) == .noContent)
        #expect(routes.handle(method: "GET", path: "/", body: []).body.contains(#""state":"Running""#))
        #expect(patch(#"{"state": "Stopped"}"#).body.contains("not one of Paused, Resumed"))
        #expect(patch(#"{"state": "Paused", "now": true}"#).body.contains("unknown field 'now'"))
        let preboot = APIRoutes(control: ControlPlane(resources: MachineResources()))
        #expect(preboot.handle(method: "PATCH", path: "/vm", body: Array(#"{"state": "Paused"}"#.utf8)).body
            .contains("not supported before starting the microVM"))
    }

    @Test func sendCtrlAltDelTypesTheKeysOnceTheMachineRuns() {
        let action = Array(#"{"action_type": "SendCtrlAltDel"}"#.utf8)
        #expect(routes.handle(method: "PUT", path: "/actions", body: action) == .noContent)
        #expect(balloon.ctrlAltDelCount == 1)
        let preboot = APIRoutes(control: ControlPlane(resources: MachineResources()))
        #expect(preboot.handle(method: "PUT", path: "/actions", body: action).body.contains("not supported before starting the microVM"))
    }

    /// A control plane whose configuration has a root drive and a second one, attached to `balloon`.
    func runningWithDrives() throws -> APIRoutes {
        var resources = MachineResources()
        try resources.putDrive(.init(id: "rootfs", options: BlockDevice.Options(path: "/images/root.ext4"), isRoot: true))
        try resources.putDrive(.init(id: "scratch", options: BlockDevice.Options(path: "/images/scratch.img")))
        let control = ControlPlane(resources: resources)
        control.attach(balloon)
        return APIRoutes(control: control)
    }

    @Test func patchingADriveGivesTheRunningDiskANewFile() throws {
        let routes = try runningWithDrives()
        let patch = { (path: String, body: String) in routes.handle(method: "PATCH", path: path, body: Array(body.utf8)) }
        #expect(patch("/drives/scratch", #"{"drive_id": "scratch", "path_on_host": "/images/new.img"}"#) == .noContent)
        #expect(balloon.replacedDiskPaths == [1: "/images/new.img"])
        let config = routes.handle(method: "GET", path: "/vm/config", body: [])
        #expect(config.body.contains(#""path_on_host":"/images/new.img""#) && !config.body.contains("scratch.img"), "\(config.body)")
        // No path: nothing to change, as Firecracker answers it.
        #expect(patch("/drives/rootfs", #"{"drive_id": "rootfs"}"#) == .noContent)
        for (path, body, says) in [
            ("/drives/other", #"{"drive_id": "other", "path_on_host": "/x"}"#, "no drive 'other'"),
            ("/drives/rootfs", #"{"drive_id": "scratch", "path_on_host": "/x"}"#, "is not the path's"),
            ("/drives/rootfs", #"{"drive_id": "rootfs", "path_on_host": "/x", "rate_limiter": {"bandwidth": {"size": 1, "refill_time": 1}}}"#, "no rate limiters"),
            ("/drives/rootfs", #"{"drive_id": "rootfs", "path_on_host": "/x", "is_read_only": true}"#, "unknown field"),
            ("/drives/rootfs", #"{"drive_id": "rootfs", "path_on_host": ""}"#, "empty"),
        ] {
            let answer = patch(path, body)
            #expect(answer.status == 400 && answer.body.contains(says), "\(body): \(answer.body)")
        }
        let preboot = APIRoutes(control: ControlPlane(resources: MachineResources()))
        #expect(preboot.handle(method: "PATCH", path: "/drives/rootfs", body: Array(#"{"drive_id": "rootfs", "path_on_host": "/x"}"#.utf8)).body
            .contains("not supported before starting the microVM"))
    }

    @Test func patchingTheStatisticsIntervalFollowsFirecrackersRule() {
        let patch = { (body: String) in routes.handle(method: "PATCH", path: "/balloon/statistics", body: Array(body.utf8)) }
        #expect(patch(#"{"stats_polling_interval_s": 5}"#) == .noContent)
        #expect(routes.handle(method: "GET", path: "/balloon", body: []).body.contains(#""stats_polling_interval_s":5"#))
        for (body, says) in [(#"{"stats_polling_interval_s": 0}"#, "cannot be turned off"), (#"{"stats_polling_interval_s": 3601}"#, "out of range"),
                             (#"{"stats_polling_interval_s": -1}"#, "out of range"), (#"{"interval": 1}"#, "unknown field")] {
            let answer = patch(body)
            #expect(answer.status == 400 && answer.body.contains(says), "\(body): \(answer.body)")
        }
        let off = FakeBalloon()
        off.turnStatisticsOff()
        let offRoutes = APIRoutes(machine: off)
        #expect(offRoutes.handle(method: "PATCH", path: "/balloon/statistics", body: Array(#"{"stats_polling_interval_s": 1}"#.utf8)).body
            .contains("cannot be turned on"))
        #expect(offRoutes.handle(method: "PATCH", path: "/balloon/statistics", body: Array(#"{"stats_polling_interval_s": 0}"#.utf8)) == .noContent)
        let preboot = APIRoutes(control: ControlPlane(resources: MachineResources()))
        #expect(preboot.handle(method: "PATCH", path: "/balloon/statistics", body: Array(#"{"stats_polling_interval_s": 1}"#.utf8)).body
            .contains("not supported before starting the microVM"))
    }

    @Test func versionFollowsFirecrackersShape() {
        let response = routes.handle(method: "GET", path: "/version", body: [])
        #expect(response == APIResponse(status: 200, body: #"{"firecracker_version":"0.1.0"}"#))
    }

    @Test func endpointsOfFeaturesEbbLacksAreRefusedByName() {
        for (method, path, feature) in [("PUT", "/vsock", "vsock"), ("PUT", "/mmds/config", "MMDS"), ("GET", "/mmds", "MMDS"),
                                        ("PUT", "/snapshot/create", "snapshots"), ("PUT", "/cpu-config", "CPU templates"),
                                        ("PUT", "/entropy", "entropy"),
                                        ("PUT", "/serial", "serial")] {
            let response = routes.handle(method: method, path: path, body: Array("{}".utf8))
            #expect(response.status == 400, "\(method) \(path)")
            #expect(response.body.contains("fault_message") && response.body.contains(feature), "\(method) \(path): \(response.body)")
        }
    }
}
