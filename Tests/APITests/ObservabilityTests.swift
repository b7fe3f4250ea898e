import Foundation
import Testing
@testable import API
import VMM

/// The logger, the metrics and GET /vm/config, through the routes as a client reaches them, with
/// real files and FIFOs.
@Suite(.serialized) struct ObservabilityTests {
    func scratch(_ name: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ebb-observability-\(name)-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    func put(_ routes: APIRoutes, _ path: String, _ body: String) -> APIResponse {
        routes.handle(method: "PUT", path: path, body: Array(body.utf8))
    }

    @Test func loggerWritesFirecrackersLineShapeAtItsLevelAndIsConfiguredOnce() throws {
        let directory = try scratch("logger")
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("log").path
        let control = ControlPlane(resources: MachineResources())
        let routes = APIRoutes(control: control, instanceID: "vm-7")
        #expect(put(routes, "/logger", #"{"log_path": "\#(log)", "level": "Loud"}"#).body.contains("level 'Loud' is not one of"))
        #expect(put(routes, "/logger", #"{"log_path": "\#(log)", "module": "api"}"#).body.contains("module is not supported"))
        #expect(put(routes, "/logger", #"{"log_path": "\#(directory.path)"}"#).body.contains("Is a directory"))
        #expect(put(routes, "/logger", #"{"log_path": "\#(log)", "level": "warning", "show_level": true, "show_log_origin": true}"#) == .noContent)
        #expect(put(routes, "/logger", #"{"log_path": "\#(log)"}"#).body.contains("already configured"))
        report("an information line, below the level")
        report("a warning line", level: .warning)
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(!text.contains("an information line"))
        // "2026-12-02T13:58:01.123456789 [vm-7:thread123:WARN:APITests/ObservabilityTests.swift:33] a warning line"
        let line = try #require(text.split(separator: "\n").last.map(String.init))
        #expect(line.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9} \[vm-7:[^:]+:WARN:APITests/ObservabilityTests.swift:\d+\] a warning line$"#,
                           options: .regularExpression) != nil, "\(line)")
        #expect(routes.handle(method: "GET", path: "/vm/config", body: []).body.contains(#""logger":{"level":"Warning","log_path":"\#(log)","show_level":true,"show_log_origin":true}"#))
    }

    @Test func metricsGoToAFIFOAsDeltasOnFlushMetricsUnderFirecrackersNames() throws {
        let directory = try scratch("metrics")
        defer { try? FileManager.default.removeItem(at: directory) }
        let fifo = directory.appendingPathComponent("metrics.fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let reader = open(fifo, O_RDONLY | O_NONBLOCK)
        #expect(reader >= 0)
        defer { close(reader) }
        let routes = APIRoutes(machine: FakeBalloon())
        #expect(put(routes, "/actions", #"{"action_type": "FlushMetrics"}"#).body.contains("metrics are not configured"))
        // A running machine: PUT /metrics is a pre-boot call in Firecracker.
        #expect(put(routes, "/metrics", #"{"metrics_path": "\#(fifo)"}"#).body.contains("not supported after starting"))

        let control = ControlPlane(resources: MachineResources())
        let preboot = APIRoutes(control: control, instanceID: "m")
        #expect(put(preboot, "/metrics", #"{"metrics_path": "\#(fifo)", "path": 1}"#).body.contains("unknown field 'path'"))
        #expect(put(preboot, "/metrics", #"{"metrics_path": "\#(fifo)"}"#) == .noContent)
        _ = preboot.handle(method: "GET", path: "/", body: [])
        _ = put(preboot, "/drives/root", #"{"drive_id": "other", "path_on_host": "/x", "is_root_device": true}"#)
        #expect(put(preboot, "/actions", #"{"action_type": "FlushMetrics"}"#) == .noContent)
        #expect(put(preboot, "/actions", #"{"action_type": "FlushMetrics"}"#) == .noContent)
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = read(reader, &buffer, buffer.count)
        let lines = String(decoding: buffer.prefix(max(count, 0)), as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 2)
        let first = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        let second = try #require(try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any])
        #expect((first["get_api_requests"] as? [String: Int])?["instance_info_count"] == 1)
        #expect((first["put_api_requests"] as? [String: Int])?["drive_fails"] == 1)
        #expect((first["put_api_requests"] as? [String: Int])?["metrics_count"] == 2)
        #expect((first["put_api_requests"] as? [String: Int])?["metrics_fails"] == 1)
        // The second line has what came between the two: the first FlushMetrics.
        #expect((second["get_api_requests"] as? [String: Int])?["instance_info_count"] == 0)
        #expect((second["put_api_requests"] as? [String: Int])?["actions_count"] == 1)
        #expect(first["utc_timestamp_ms"] as? Int ?? 0 > 1_700_000_000_000)
    }

    @Test func vmConfigAnswersTheWholeConfigurationInFirecrackersShape() throws {
        let control = ControlPlane(resources: MachineResources())
        let routes = APIRoutes(control: control)
        #expect(put(routes, "/boot-source", #"{"kernel_image_path": "/k", "boot_args": "console=ttyS0"}"#) == .noContent)
        #expect(put(routes, "/machine-config", #"{"vcpu_count": 2, "mem_size_mib": 256}"#) == .noContent)
        #expect(put(routes, "/drives/root", #"{"drive_id": "root", "path_on_host": "/img", "is_root_device": true, "is_read_only": true}"#) == .noContent)
        let response = routes.handle(method: "GET", path: "/vm/config", body: [])
        #expect(response.status == 200)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any])
        #expect((object["boot-source"] as? [String: Any])?["boot_args"] as? String == "console=ttyS0")
        #expect((object["machine-config"] as? [String: Any])?["vcpu_count"] as? Int == 2)
        #expect((object["machine-config"] as? [String: Any])?["mem_size_mib"] as? Int == 256)
        let drive = (object["drives"] as? [[String: Any]])?.first
        #expect(drive?["drive_id"] as? String == "root" && drive?["is_read_only"] as? Bool == true)
        #expect((object["balloon"] as? [String: Any])?["free_page_reporting"] as? Bool == true)
        #expect(object["vsock"] is NSNull && object["logger"] is NSNull && (object["network-interfaces"] as? [Any])?.isEmpty == true)
    }
}
