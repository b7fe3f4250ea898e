import Foundation
import Testing

/// What the API changes in a running guest: a disk's backing file (PATCH /drives/{id}), which the
/// test kernel hears of by a config interrupt and reads, and the balloon's statistics interval
/// (PATCH /balloon/statistics), which the guest's refills follow.
@Suite(.enabled(if: kvmAvailable, kvmSkipReason), .serialized)
struct APIRuntimeChangeTests {
    /// The blk-swap scenario on `first`, waiting for a new image; the socket of its API.
    func startSwap(_ scratch: DiskScratch, first: String) throws -> (EbbProcess, String) {
        try requireTestKernel()
        let socket = scratch.directory.appendingPathComponent("api.sock").path
        let ebb = try EbbProcess(["run", "--kernel", testKernelELF, "--memory", "256M", "--disk", first, "--api-sock", socket,
                                  "--cmdline", "ebb.scenario=blk-swap ebb.hold=30"])
        #expect(ebb.wait(seconds: 60) { $0.contains("blk-swap: waiting for a new image") }, "\(ebb.stdout.suffix(2000)) \(ebb.stderr)")
        return (ebb, socket)
    }

    @Test func aRunningDiskGetsANewImage() throws {
        let scratch = try DiskScratch("patch-drive")
        let first = try scratch.image("first.img")
        var generator = SplitMix(seed: 0xd15c)
        let second = (0..<(4 << 20)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let secondPath = try scratch.image("second.img", bytes: second)
        let (ebb, socket) = try startSwap(scratch, first: first)
        let patch = { (body: String) in try unixHTTP(socket, "PATCH", "/drives/vda", body: body) }
        // A file that cannot be had changes nothing: the guest is still waiting afterwards.
        let missing = try patch(#"{"drive_id": "vda", "path_on_host": "\#(scratch.directory.path)/none.img"}"#)
        #expect(missing.status == 400 && missing.body.contains("no such file"), "\(missing.body)")
        let swapped = try patch(#"{"drive_id": "vda", "path_on_host": "\#(secondPath)"}"#)
        #expect(swapped.status == 204, "\(swapped.body)")
        let config = try unixHTTP(socket, "GET", "/vm/config")
        #expect(config.body.contains(#""path_on_host":"\#(secondPath)""#), "\(config.body)")
        let result = ebb.finish(seconds: 60)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("blk-swap: config changed capacity=8192 sectors (was 16384)"), "\(result.stdout)")
        #expect(result.stdout.contains("blk: read sector=0 bytes=4096 status=OK fnv=\(fnv1a(second[0..<4096]))"), "\(result.stdout)")
        #expect(result.stdout.contains("blk: read sector=8184 bytes=4096 status=OK fnv=\(fnv1a(second[(second.count - 4096)...]))"), "\(result.stdout)")
    }

    /// The same path again, after the file grew: Ebb measures it anew (its own lock stays), as
    /// Firecracker does for a resized image.
    @Test func theSameImageGrownIsMeasuredAgain() throws {
        let scratch = try DiskScratch("patch-drive-grow")
        let path = try scratch.image()
        let (ebb, socket) = try startSwap(scratch, first: path)
        #expect(truncate(path, 12 << 20) == 0)
        let answer = try unixHTTP(socket, "PATCH", "/drives/vda", body: #"{"drive_id": "vda", "path_on_host": "\#(path)"}"#)
        #expect(answer.status == 204, "\(answer.body)")
        let result = ebb.finish(seconds: 60)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("blk-swap: config changed capacity=24576 sectors (was 16384)"), "\(result.stdout)")
        // The grown part reads as zeros.
        #expect(result.stdout.contains("blk: read sector=24568 bytes=4096 status=OK fnv=\(fnv1a([UInt8](repeating: 0, count: 4096)))"), "\(result.stdout)")
    }

    /// Statistics every 60 s, then PATCHed to every second: the first comes at once and the
    /// guest refills its buffer each second after, where it would not have refilled once.
    @Test func theStatisticsIntervalChangesWhileTheGuestRuns() throws {
        try requireTestKernel()
        let scratch = try DiskScratch("patch-stats")
        let socket = scratch.directory.appendingPathComponent("api.sock").path
        let ebb = try EbbProcess(["run", "--kernel", testKernelELF, "--memory", "256M", "--idle-reclaim", "off", "--stats-interval", "60",
                                  "--api-sock", socket, "--cmdline", "ebb.scenario=stats ebb.hold=5"])
        #expect(ebb.wait(seconds: 60) { $0.contains("scenario: stats") }, "\(ebb.stdout.suffix(2000)) \(ebb.stderr)")
        let off = try unixHTTP(socket, "PATCH", "/balloon/statistics", body: #"{"stats_polling_interval_s": 0}"#)
        #expect(off.status == 400 && off.body.contains("cannot be turned off"), "\(off.body)")
        let answer = try unixHTTP(socket, "PATCH", "/balloon/statistics", body: #"{"stats_polling_interval_s": 1}"#)
        #expect(answer.status == 204, "\(answer.body)")
        #expect(try unixHTTP(socket, "GET", "/balloon").body.contains(#""stats_polling_interval_s":1"#))
        let result = ebb.finish(seconds: 60)
        #expect(result.status == 0, "\(result.stderr)")
        let refills = result.stdout.components(separatedBy: "stats: done after ").last.flatMap { Int($0.prefix { $0.isNumber }) } ?? 0
        #expect(refills >= 3, "\(result.stdout.suffix(1500))")
    }
}
