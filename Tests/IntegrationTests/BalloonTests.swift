import Foundation
import Testing
import VMM

/// The test kernel as a hostile virtio driver: each malformed request must break only the balloon
/// (DEVICE_NEEDS_RESET, reported by ebb), and a driver reset must give a working device again.
@Suite(.enabled(if: kvmAvailable, kvmSkipReason), .serialized)
struct HostileDriverTests {
    static let cases: [(name: String, status: String, breaks: String?)] = [
        ("loop", "0x4f", "descriptor chain longer than 64 (a loop?)"),
        ("outside", "0x4f", "buffer 0x7fff00000000 (+2097152) is outside guest RAM"),
        ("huge", "0x4f", "(+4294967295) is outside guest RAM"),
        ("wrap", "0x4f", "avail index is 69 entries ahead of a 64-entry queue"),
        ("next", "0x4f", "descriptor next 64 is outside a 64-entry table"),
        ("ring", "0x4f", "descriptor ring at 0x7fff00000000 is outside guest RAM"),
        // Not malformed: an unaligned range keeps its partial pages; a report before DRIVER_OK is ignored.
        ("unaligned", "0xf", nil),
        ("early", "0xb", nil),
    ]

    @Test(arguments: 0..<cases.count)
    func malformedRequestBreaksOnlyTheDevice(index: Int) throws {
        try requireTestKernel()
        let (name, status, breaks) = Self.cases[index]
        let result = try runEbb(["run", "--kernel", testKernelELF, "--memory", "128M", "--cmdline", "ebb.scenario=hostile-\(name)"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("hostile: \(name) status=\(status)"), "\(result.stdout)")
        #expect(result.stdout.contains("hostile: recovered"), "\(result.stdout)")
        if let breaks {
            #expect(result.stderr.contains("virtio-balloon: device needs reset: "), "\(result.stderr)")
            #expect(result.stderr.contains(breaks), "\(result.stderr)")
        } else {
            #expect(!result.stderr.contains("needs reset"), "\(result.stderr)")
        }
    }

    /// A driver that breaks the balloon and resets it 40 times: Ebb prints at most a burst of what
    /// that causes (GuestReportLimits: 10 lines per 5 s) and counts the rest; the device still
    /// comes back and Ebb ends with the guest's power-off.
    @Test func aGuestBreakingItsDeviceInALoopCannotFloodEbbsLog() throws {
        try requireTestKernel()
        let result = try runEbb(["run", "--kernel", testKernelELF, "--memory", "128M", "--cmdline", "ebb.scenario=hostile-flood ebb.repeat=40"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("hostile: flood broke=40 of 40"), "\(result.stdout)")
        #expect(result.stdout.contains("hostile: recovered"), "\(result.stdout)")
        let lines = result.stderr.split(separator: "\n")
        let caused = lines.filter { $0.contains("virtio-balloon: device needs reset") || $0.contains("virtio-balloon: driver ready") }
        // The lines the guest caused: 40 breaks and 41 driver starts (the first, one after each of
        // the first 39 breaks, the recovery's). However fast the guest loops, a 5 s window lets 10
        // through, and the guest is done within a few windows.
        let events = 40 + 41
        #expect(caused.count >= GuestReportLimits.burst, "\(result.stderr)")
        #expect(caused.count < events, "\(caused.count) lines: \(result.stderr)")
        let heldBack = lines.compactMap { line -> Int? in
            guard let range = line.range(of: #"[0-9]+ more lines? the guest caused not printed"#, options: .regularExpression) else { return nil }
            return Int(line[range].prefix { $0.isNumber })
        }
        #expect(caused.count + heldBack.reduce(0, +) == events, "\(caused.count) printed, \(heldBack) held back: \(result.stderr)")
    }

    @Test func unalignedReportKeepsThePartialPages() throws {
        try requireTestKernel()
        let result = try runEbb(["run", "--kernel", testKernelELF, "--memory", "128M", "--cmdline", "ebb.scenario=hostile-unaligned"])
        // [0x200001, 0x400000) rounds inward to 511 pages; the recovery report adds 2 MiB.
        #expect(result.stderr.contains("2 ranges, 4.0 MiB reported, 4.0 MiB discarded"), "\(result.stderr)")
        #expect(result.stderr.contains("0 failures"))
    }
}

@Suite(.enabled(if: kvmAvailable, kvmSkipReason), .serialized)
struct BalloonTargetTests {
    /// With 256 MiB of a 512 MiB guest in the balloon, the guest touching all it has left keeps the
    /// host's RSS well under the guest's size.
    @Test func targetIsHonouredAndHostMemoryDoesNotGrow() throws {
        try requireTestKernel()
        let ebb = try EbbProcess(["run", "--kernel", testKernelELF, "--memory", "512M", "--balloon-target", "256M",
                                  "--cmdline", "ebb.scenario=balloon ebb.hold=1"])
        let sampler = RSSSampler(pid: ebb.pid)
        let result = ebb.finish(seconds: 120)
        let peak = RSSSampler.peak(sampler.stop())
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("balloon: target 256 MiB, actual 256 MiB"), "\(result.stdout)")
        #expect(result.stdout.contains("balloon: touched 25"), "\(result.stdout)")
        #expect(result.stderr.contains("balloon: 65536 pages inflated"), "\(result.stderr)")
        #expect(peak < (256 + 48) * mebibyte, "peak RSS \(peak / mebibyte) MiB with 256 MiB of 512 MiB ballooned")
    }

    @Test func targetZeroLeavesTheGuestAllItsMemory() throws {
        try requireTestKernel()
        let result = try runEbb(["run", "--kernel", testKernelELF, "--memory", "256M", "--cmdline", "ebb.scenario=balloon ebb.hold=1"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("balloon: target 0 MiB, actual 0 MiB"), "\(result.stdout)")
    }

    @Test func statisticsArriveAtTheConfiguredInterval() throws {
        try requireTestKernel()
        let result = try runEbb(["run", "--kernel", testKernelELF, "--memory", "256M", "--stats-interval", "0.2",
                                 "--cmdline", "ebb.scenario=stats ebb.hold=2"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("stats: refilled 3"), "\(result.stdout)")
        #expect(result.stderr.contains("guest statistics ("), "\(result.stderr)")
        #expect(result.stderr.contains("total-memory=268"), "\(result.stderr)")
    }
}

/// A tool drives the balloon through the API while the guest runs: target 256 MiB, then 0.
@Suite(.enabled(if: kvmAvailable, kvmSkipReason), .serialized)
struct BalloonAPITests {
    @Test func targetZeroThroughTheAPIGivesTheMemoryBack() throws {
        try requireTestKernel()
        let socket = FileManager.default.temporaryDirectory.appendingPathComponent("ebb-api-\(getpid()).sock").path
        let ebb = try EbbProcess(["run", "--kernel", testKernelELF, "--memory", "512M", "--balloon-target", "256M",
                                  "--api-socket", socket, "--cmdline", "ebb.scenario=balloon ebb.hold=8"])
        #expect(ebb.wait(seconds: 60) { $0.contains("balloon: touched") }, "\(ebb.stdout)")
        let before = try unixHTTP(socket, "GET", "/balloon")
        #expect(before.status == 200 && before.body.contains(#""amount_mib":256"#), "\(before)")
        let patch = try unixHTTP(socket, "PATCH", "/balloon", body: #"{"amount_mib": 0}"#)
        #expect(patch.status == 204, "\(patch)")
        #expect(ebb.wait(seconds: 30) { $0.contains("balloon: target 0 MiB, actual 0 MiB") }, "\(ebb.stdout)")
        let statistics = try unixHTTP(socket, "GET", "/balloon/statistics")
        #expect(statistics.body.contains(#""actual_mib":0"#) && statistics.body.contains(#""deflated_pages":65536"#), "\(statistics)")
        #expect(try unixHTTP(socket, "PATCH", "/balloon", body: "{").status == 400)
        let result = ebb.finish(seconds: 60)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: socket), "the API socket is removed at exit")
    }

    /// The API's event-loop thread must not take SIGTERM's default action: ebb stops in order.
    @Test func sigtermWithTheAPIRunningStopsInOrder() throws {
        try requireTestKernel()
        let socket = FileManager.default.temporaryDirectory.appendingPathComponent("ebb-api-term-\(getpid()).sock").path
        let ebb = try EbbProcess(["run", "--kernel", testKernelELF, "--api-socket", socket, "--cmdline", "ebb.scenario=spin"])
        #expect(ebb.wait(seconds: 30) { $0.contains("spin: forever") })
        #expect(try unixHTTP(socket, "GET", "/").status == 200)
        let machine = try unixHTTP(socket, "GET", "/machine-config")
        #expect(machine.status == 200 && machine.body.contains(#""mem_size_mib":512"#) && machine.body.contains(#""vcpu_count":1"#), "\(machine)")
        ebb.signal(SIGTERM)
        let result = ebb.finish(seconds: 20)
        #expect(result.status == 128 + SIGTERM, "\(result.stderr)")
        #expect(result.stderr.contains("stopped by signal 15"))
        #expect(!FileManager.default.fileExists(atPath: socket))
    }
}
