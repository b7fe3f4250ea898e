import Foundation
import Testing
import API

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
        let log = scratch.directory.appendingPathComponent("ebb.log").path
        let metrics = scratch.directory.appendingPathComponent("metrics.fifo").path
        #expect(mkfifo(metrics, 0o600) == 0)
        // Read the metrics FIFO as a client does, from before the machine starts.
        // (Non-blocking: a FIFO's reader waits in open(2) for a writer otherwise.)
        let readerFD = open(metrics, O_RDONLY | O_NONBLOCK)
        #expect(readerFD >= 0)
        let metricsReader = FileHandle(fileDescriptor: readerFD, closeOnDealloc: true)
        // In firecracker-go-sdk's order.
        let requests: [(String, String, String)] = [
            ("PUT", "/logger", #"{"log_path": "\#(log)", "level": "Info", "show_level": true, "show_log_origin": false}"#),
            ("PUT", "/metrics", #"{"metrics_path": "\#(metrics)"}"#),
            ("PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 256, "smt": false}"#),
            ("GET", "/machine-config", ""),
            ("PUT", "/balloon", #"{"amount_mib": 0, "deflate_on_oom": true, "stats_polling_interval_s": 1}"#),
            ("PUT", "/boot-source", #"{"kernel_image_path": "\#(testKernelELF)", "boot_args": "ebb.scenario=blk-read ebb.hold=0"}"#),
            ("PUT", "/drives/rootfs", #"{"drive_id": "rootfs", "path_on_host": "\#(disk)", "is_root_device": true, "is_read_only": false}"#),
        ]
        for (method, path, body) in requests {
            let answer = try unixHTTP(socket, method, path, body: body)
            #expect(answer.status == (method == "GET" ? 200 : 204), "\(method) \(path): \(answer.status) \(answer.body)")
        }
        let again = try unixHTTP(socket, "PUT", "/logger", body: #"{"log_path": "\#(log)"}"#)
        #expect(again.status == 400 && again.body.contains("already configured"), "\(again.body)")
        let config = try unixHTTP(socket, "GET", "/vm/config")
        #expect(config.body.contains(#""drive_id":"rootfs""#) && config.body.contains(#""metrics_path":"\#(metrics)""#), "\(config.body)")
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
        // The log has Ebb's messages in Firecracker's shape, the metrics FIFO the line written at exit.
        let logText = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(logText.contains("[vm-42:main:INFO] guest powered off"), "\(logText)")
        let lines = String(decoding: metricsReader.availableData, as: UTF8.self).split(separator: "\n")
        let last = try #require(lines.last, "no metrics line")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        let puts = object["put_api_requests"] as? [String: Int]
        #expect(puts?["drive_count"] == 1 && puts?["logger_count"] == 2 && puts?["logger_fails"] == 1, "\(last)")
        #expect(((object["block_rootfs"] as? [String: Int])?["read_count"] ?? 0) > 0, "\(last)")
        #expect(object["balloon"] != nil && object["utc_timestamp_ms"] != nil, "\(last)")
    }

    /// PATCH /vm Paused stops the vCPUs: the echo scenario answers no key until Resumed.
    @Test func aPausedGuestRunsNothingUntilResumed() throws {
        try requireTestKernel()
        let scratch = try DiskScratch("api-pause")
        let socket = scratch.directory.appendingPathComponent("api.sock").path
        let ebb = try EbbProcess(["run", "--kernel", testKernelELF, "--cmdline", "ebb.scenario=echo", "--api-sock", socket])
        #expect(ebb.wait(seconds: 30) { $0.contains("echo: ready") }, "\(ebb.stderr)")
        #expect(try unixHTTP(socket, "PATCH", "/vm", body: #"{"state": "Paused"}"#).status == 204)
        #expect(try unixHTTP(socket, "GET", "/").body.contains(#""state":"Paused""#))
        let echoed = { (output: String) in output.components(separatedBy: "echo: ready").last?.contains("z") == true }
        ebb.type("z")
        #expect(!ebb.wait(seconds: 1, until: echoed), "the paused guest echoed")
        #expect(try unixHTTP(socket, "PATCH", "/vm", body: #"{"state": "Resumed"}"#).status == 204)
        #expect(ebb.wait(seconds: 10, until: echoed), "the resumed guest did not echo: \(ebb.stdout.suffix(200))")
        ebb.type("q")
        let result = ebb.finish(seconds: 30)
        #expect(result.status == 0, "\(result.stderr)")
    }

    /// SendCtrlAltDel types the keys on the i8042: the test kernel reads them and powers off.
    @Test func sendCtrlAltDelReachesTheGuestsKeyboard() throws {
        try requireTestKernel()
        let scratch = try DiskScratch("api-cad")
        let socket = scratch.directory.appendingPathComponent("api.sock").path
        let ebb = try EbbProcess(["run", "--kernel", testKernelELF, "--cmdline", "ebb.scenario=keyboard", "--api-sock", socket])
        #expect(ebb.wait(seconds: 30) { $0.contains("keyboard: ready") }, "\(ebb.stderr)")
        let answer = try unixHTTP(socket, "PUT", "/actions", body: #"{"action_type": "SendCtrlAltDel"}"#)
        #expect(answer.status == 204, "\(answer.body)")
        let result = ebb.finish(seconds: 30)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("keyboard: 14\nkeyboard: 11\nkeyboard: e0 71\nkeyboard: ctrl-alt-del"), "\(result.stdout.suffix(500))")
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

    /// Ten clients holding connections open: an eleventh is answered 503 and closed (Firecracker's
    /// API allows ten), and once one of the ten goes, a new client is served.
    @Test func connectionsBeyondTheLimitAreRefusedAndTheAPIStaysUp() throws {
        let scratch = try DiskScratch("api-connections")
        let socket = scratch.directory.appendingPathComponent("api.sock").path
        let ebb = try EbbProcess(["--api-sock", socket])
        defer { ebb.signal(SIGTERM); _ = ebb.finish(seconds: 30) }
        #expect(waitForSocket(socket, ebb), "\(ebb.stderr)")
        var held = try (0..<APIServer.maximumConnections).map { _ in try unixConnect(socket) }
        defer { held.forEach { close($0) } }
        let refused = try unixHTTP(socket, "GET", "/")
        #expect(refused.status == 503 && refused.body.contains("too many open connections"), "\(refused)")
        close(held.removeLast())
        // The server sees that close on its own event loop: a moment later there is room again.
        var answer = (status: 0, body: "")
        for _ in 0..<50 where answer.status != 200 {
            answer = try unixHTTP(socket, "GET", "/")
            if answer.status != 200 { usleep(20_000) }
        }
        #expect(answer.status == 200 && answer.body.contains("\"state\""), "\(answer)")
    }
}
