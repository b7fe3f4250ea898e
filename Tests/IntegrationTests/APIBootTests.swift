import Foundation
import Testing

/// `ebb --api-sock PATH --id ID`, as Firecracker's clients start Firecracker: no machine until the
/// API has configured one and sent InstanceStart.
@Suite(.enabled(if: kvmAvailable, kvmSkipReason), .serialized)
struct APIBootTests {
    /// Whether the API's socket appeared within 15 s.
    func waitForSocket(_ path: String, _ ebb: EbbProcess) -> Bool {
        for _ in 0..<300 {
            if FileManager.default.fileExists(atPath: path) { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return false
    }

    @Test func aGuestBootsThroughTheAPIAlone() throws {
        try requireTestKernel()
        let scratch = try DiskScratch("api")
        let disk = try scratch.image()
        let socket = scratch.directory.appendingPathComponent("api.sock").path
        let ebb = try EbbProcess(["--api-sock", socket, "--id", "vm-42"])
        #expect(waitForSocket(socket, ebb), "\(ebb.stderr)")
        let info = try unixHTTP(socket, "GET", "/")
        #expect(info.body.contains(#""id":"vm-42""#) && info.body.contains(#""state":"Not started""#), "\(info.body)")
        // In firecracker-go-sdk's order.
        let requests: [(String, String, String)] = [
            ("PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 256, "smt": false}"#),
            ("PUT", "/balloon", #"{"amount_mib": 0, "deflate_on_oom": true, "stats_polling_interval_s": 1}"#),
            ("PUT", "/boot-source", #"{"kernel_image_path": "\#(testKernelELF)", "boot_args": "ebb.scenario=blk-read ebb.hold=0"}"#),
            ("PUT", "/drives/rootfs", #"{"drive_id": "rootfs", "path_on_host": "\#(disk)", "is_root_device": true, "is_read_only": false}"#),
        ]
        for (method, path, body) in requests {
            let answer = try unixHTTP(socket, method, path, body: body)
            #expect(answer.status == 204, "\(method) \(path): \(answer.status) \(answer.body)")
        }
        let early = try unixHTTP(socket, "PATCH", "/balloon", body: #"{"amount_mib": 1}"#)
        #expect(early.status == 400 && early.body.contains("not supported before starting the microVM"), "\(early.body)")
        let unknown = try unixHTTP(socket, "PUT", "/actions", body: #"{"action_type": "Reboot"}"#)
        #expect(unknown.status == 400, "\(unknown.body)")
        let start = try unixHTTP(socket, "PUT", "/actions", body: #"{"action_type": "InstanceStart"}"#)
        #expect(start.status == 204, "\(start.body)")
        let result = ebb.finish(seconds: 60)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("blk: get-id status=OK serial='rootfs'"), "\(result.stdout)")
        #expect(result.stdout.contains("root=/dev/vda rw"), "\(result.stdout.prefix(2000))")
    }

    @Test func aStopBeforeTheStartEndsEbbWithTheSignalsStatus() throws {
        let scratch = try DiskScratch("api-stop")
        let socket = scratch.directory.appendingPathComponent("api.sock").path
        let ebb = try EbbProcess(["--api-sock", socket])
        #expect(waitForSocket(socket, ebb), "\(ebb.stderr)")
        let incomplete = try unixHTTP(socket, "PUT", "/actions", body: #"{"action_type": "InstanceStart"}"#)
        #expect(incomplete.status == 400 && incomplete.body.contains("kernel"), "\(incomplete.body)")
        ebb.signal(SIGTERM)
        let result = ebb.finish(seconds: 30)
        #expect(result.status == 128 + SIGTERM, "\(result.stderr)")
        #expect(result.stderr.contains("stopped by signal 15 before the machine started"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: socket), "the socket was left behind")
    }
}
