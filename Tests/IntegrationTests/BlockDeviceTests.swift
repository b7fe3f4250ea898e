import Foundation
import Testing

/// Disk images for one test, in a scratch directory removed with it.
final class DiskScratch {
    let directory: URL

    init(_ name: String) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ebb-disk-\(name)-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    /// An image of `bytes`; a seeded byte pattern by default (every sector differs).
    func image(_ name: String = "disk.img", bytes: [UInt8]? = nil, size: Int = 8 << 20) throws -> String {
        let url = directory.appendingPathComponent(name)
        var generator = SplitMix(seed: 0x5eed)
        let content = bytes ?? (0..<size).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        try Data(content).write(to: url)
        return url.path
    }
}

/// A small deterministic generator, so an image's bytes are known without storing them.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// FNV-1a, as the test kernel prints it for what it read.
func fnv1a(_ bytes: some Sequence<UInt8>) -> String {
    var hash: UInt32 = 2_166_136_261
    for byte in bytes { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
    return "0x" + String(hash, radix: 16)
}

func bytes(of path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

/// The test kernel drives Ebb's virtio-blk over a real image file: what the host wrote it reads,
/// what it writes and flushes the host reads back, a discard makes the file sparse, a read-only
/// disk refuses writes, and hostile requests break at most the disk, never Ebb or the balloon.
@Suite(.enabled(if: kvmAvailable, kvmSkipReason), .serialized)
struct BlockDeviceTests {
    func boot(_ scenario: String, disks: [String], extra: String = "") throws -> EbbProcess.Result {
        try requireTestKernel()
        return try runEbb(["run", "--kernel", testKernelELF, "--memory", "256M",
                           "--cmdline", "ebb.scenario=\(scenario) \(extra)"] + disks.flatMap { ["--disk", $0] }, seconds: 120)
    }

    @Test func readsWhatTheHostWroteAndItsSerial() throws {
        let scratch = try DiskScratch("read")
        let path = try scratch.image()
        let image = try bytes(of: path)
        let result = try boot("blk-read", disks: ["\(path),serial=ebb-disk-0042"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("blk: capacity=16384 sectors"), "\(result.stdout)")
        #expect(result.stdout.contains("blk: get-id status=OK serial='ebb-disk-0042'"), "\(result.stdout)")
        #expect(result.stdout.contains("blk: read sector=0 bytes=4096 status=OK fnv=\(fnv1a(image[0..<4096]))"), "\(result.stdout)")
        #expect(result.stdout.contains("blk: read sector=16376 bytes=4096 status=OK fnv=\(fnv1a(image[(image.count - 4096)...]))"), "\(result.stdout)")
        #expect(result.stderr.contains("2 reads (8 KiB)"), "\(result.stderr)")
    }

    @Test func writeFlushWriteZeroesAndDiscardReachTheFile() throws {
        let scratch = try DiskScratch("write")
        let path = try scratch.image(bytes: [UInt8](repeating: 0xab, count: 8 << 20))
        let before = try diskUsage(path)
        let result = try boot("blk-write", disks: [path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("blk: write sector=16 bytes=4096 status=OK flush=OK"), "\(result.stdout)")
        #expect(result.stdout.contains("blk: read-back status=OK matches"), "\(result.stdout)")
        #expect(result.stdout.contains("blk: write-zeroes sector=32 sectors=8 status=OK"), "\(result.stdout)")
        #expect(result.stdout.contains("blk: discard sector=2048 sectors=2048 status=OK"), "\(result.stdout)")
        let image = try bytes(of: path)
        let written = (0..<4096).map { UInt8(truncatingIfNeeded: $0 * 31 + 7) }
        #expect(Array(image[(16 * 512)..<(16 * 512 + 4096)]) == written)
        #expect(image[(32 * 512)..<(40 * 512)].allSatisfy { $0 == 0 }, "write-zeroes left data")
        #expect(image[(40 * 512)..<(41 * 512)].allSatisfy { $0 == 0xab }, "write-zeroes went past its range")
        #expect(image[(1 << 20)..<(2 << 20)].allSatisfy { $0 == 0 }, "the discarded MiB does not read as zeros")
        #expect(image[(2 << 20)...].allSatisfy { $0 == 0xab })
        // The discarded MiB is a hole, all of it: no data from its start to its end. (The file's
        // block count alone cannot say so: the punch can cost the file system an extent block.)
        let after = try diskUsage(path)
        #expect(after < before, "disk usage \(before) -> \(after) bytes")
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        #expect(lseek(fd, 1 << 20, 4 /* SEEK_HOLE */) == 1 << 20, "no hole where the guest discarded")
        #expect(lseek(fd, 1 << 20, 3 /* SEEK_DATA */) == 2 << 20, "data inside the discarded MiB")
    }

    @Test func readOnlyDiskRefusesWrites() throws {
        let scratch = try DiskScratch("readonly")
        let path = try scratch.image()
        let image = try bytes(of: path)
        let result = try boot("blk-readonly", disks: ["\(path),readonly=on"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("ro=1"), "\(result.stdout)")
        #expect(result.stdout.contains("blk: write status=IOERR"), "\(result.stdout)")
        #expect(result.stdout.contains("blk: discard status=UNSUPP"), "\(result.stdout)")
        #expect(result.stdout.contains("blk: read sector=0 bytes=4096 status=OK fnv=\(fnv1a(image[0..<4096]))"), "\(result.stdout)")
        #expect(try bytes(of: path) == image, "a read-only disk's image changed")
    }

    @Test func hostileRequestsLeaveEbbAndTheBalloonWorking() throws {
        let scratch = try DiskScratch("hostile")
        let path = try scratch.image()
        let result = try boot("blk-hostile", disks: [path])
        #expect(result.status == 0, "\(result.stderr)")
        let answered = [("past-the-end", "IOERR"), ("straddling-the-end", "IOERR"), ("sector-overflow", "IOERR"),
                        ("odd-length", "IOERR"), ("huge-length", "IOERR"), ("read-into-readable", "IOERR"),
                        ("unknown-type", "UNSUPP"), ("discard-reserved-flags", "UNSUPP"), ("short-header", "IOERR")]
        for (name, status) in answered {
            #expect(result.stdout.contains("blk-hostile: \(name) status=\(status)"), "\(name): \(result.stdout)")
        }
        for name in ["status-read-only", "descriptor-loop"] {
            #expect(result.stdout.contains("blk-hostile: \(name) needs-reset=yes used=no"), "\(name): \(result.stdout)")
            #expect(result.stdout.contains("blk-hostile: \(name) recovered"), "\(name): \(result.stdout)")
        }
        #expect(result.stderr.contains("device needs reset: virtio-blk request without a device-writable status byte"), "\(result.stderr)")
        #expect(result.stderr.contains("device needs reset: descriptor chain longer than 64 (a loop?)"), "\(result.stderr)")
        #expect(result.stdout.contains("blk-hostile: balloon report used"), "\(result.stdout)")
        #expect(result.stderr.contains("free page reporting: 1 ranges, 2 MiB reported, 2 MiB discarded"), "\(result.stderr)")
        #expect(result.stderr.contains("7 answered IOERR, 2 UNSUPP"), "\(result.stderr)")
    }

    /// A Firecracker config file's root drive: the guest's first disk, its drive_id the serial,
    /// and `root=/dev/vda` on the command line, as Firecracker does it.
    @Test func aConfigFileDriveIsTheGuestsDisk() throws {
        try requireTestKernel()
        let scratch = try DiskScratch("config")
        let path = try scratch.image()
        let config = scratch.directory.appendingPathComponent("vm.json")
        let log = scratch.directory.appendingPathComponent("vm.log").path
        let metrics = scratch.directory.appendingPathComponent("vm.metrics").path
        try Data("""
            {"boot-source": {"kernel_image_path": "\(testKernelELF)", "boot_args": "ebb.scenario=blk-read"},
             "machine-config": {"vcpu_count": 1, "mem_size_mib": 256},
             "drives": [{"drive_id": "rootfs", "path_on_host": "\(path)", "is_root_device": true, "is_read_only": true}],
             "logger": {"log_path": "\(log)", "level": "Info"}, "metrics": {"metrics_path": "\(metrics)"}}
            """.utf8).write(to: config)
        let result = try runEbb(["--config-file", config.path, "--no-api"], seconds: 120)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("blk: get-id status=OK serial='rootfs'"), "\(result.stdout)")
        #expect(result.stdout.contains("ro=1"), "\(result.stdout)")
        #expect(result.stdout.contains("root=/dev/vda ro"), "the test kernel prints its command line: \(result.stdout.prefix(2000))")
        // The config file's logger and metrics: Ebb's messages, and the counters at exit.
        let logText = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(logText.contains("[ebb:main] guest powered off"), "\(logText)")
        let metricsText = (try? String(contentsOfFile: metrics, encoding: .utf8)) ?? ""
        let line = try JSONSerialization.jsonObject(with: Data(metricsText.utf8)) as? [String: Any]
        #expect(((line?["block_rootfs"] as? [String: Int])?["read_count"] ?? 0) > 0, "\(metricsText)")
    }

    /// Two disks: the first is the first one the guest finds, and each keeps its own image.
    @Test func secondDiskIsItsOwnDevice() throws {
        let scratch = try DiskScratch("two")
        let first = try scratch.image("first.img", bytes: [UInt8](repeating: 1, count: 1 << 20))
        let second = try scratch.image("second.img")
        let result = try boot("blk-read", disks: [first, second])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("blk: capacity=2048 sectors"), "\(result.stdout)")
        #expect(result.stderr.contains("disk '\(first)': 2 reads"), "\(result.stderr)")
        #expect(result.stderr.contains("disk '\(second)': 0 reads"), "\(result.stderr)")
    }

    /// cache=none is O_DIRECT: what the guest reads leaves nothing in the host's page cache, where
    /// no balloon could reach it; cache=writeback, for contrast, leaves what it read.
    @Test func directDiskLeavesNothingInTheHostPageCache() throws {
        let scratch = try DiskScratch("direct")
        let path = try scratch.image()
        try evictFromPageCache(path)
        #expect(try residentPageCacheBytes(path) == 0, "the image is still in the page cache before the test")
        let direct = try boot("blk-read", disks: [path])
        #expect(direct.status == 0, "\(direct.stderr)")
        #expect(!direct.stderr.contains("refuses O_DIRECT"), "\(direct.stderr)")
        #expect(try residentPageCacheBytes(path) == 0, "cache=none left the image in the host's page cache")
        let buffered = try boot("blk-read", disks: ["\(path),cache=writeback"])
        #expect(buffered.status == 0, "\(buffered.stderr)")
        #expect(try residentPageCacheBytes(path) >= 8192, "cache=writeback: nothing of the 8 KiB read is cached")
    }

    /// Where the file system refuses O_DIRECT (ramfs has no direct I/O), cache=none falls back to
    /// the page cache and says so in one line; the disk still works.
    @Test(.enabled(if: getuid() == 0, "needs root to mount a ramfs"))
    func cacheNoneFallsBackWhereTheFileSystemRefusesODirect() throws {
        let scratch = try DiskScratch("ramfs")
        let mountPoint = scratch.directory.appendingPathComponent("ramfs").path
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        guard mount("ramfs", mountPoint, "ramfs", 0, nil) == 0 else {
            throw TestFailure("cannot mount a ramfs at \(mountPoint): errno \(errno)")
        }
        // Unmounted before the scratch directory goes.
        defer { umount(mountPoint); withExtendedLifetime(scratch) {} }
        let path = try scratch.image("ramfs/disk.img")
        let image = try bytes(of: path)
        let result = try boot("blk-read", disks: [path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("disk image '\(path)': its file system refuses O_DIRECT; using the host's page cache (cache=writeback)"),
                "\(result.stderr)")
        #expect(result.stdout.contains("fnv=\(fnv1a(image[0..<4096]))"), "\(result.stdout)")
    }

    func evictFromPageCache(_ path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw TestFailure("open \(path): errno \(errno)") }
        defer { close(fd) }
        fdatasync(fd)
        guard posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED)) == 0 else { throw TestFailure("posix_fadvise failed") }
    }

    /// How much of the file the page cache holds (mincore over a mapping of it, as fincore does).
    func residentPageCacheBytes(_ path: String) throws -> Int {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw TestFailure("open \(path): errno \(errno)") }
        defer { close(fd) }
        let size = Int(lseek(fd, 0, SEEK_END))
        guard let mapping = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), mapping != MAP_FAILED else { throw TestFailure("mmap failed") }
        defer { munmap(mapping, size) }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var vector = [UInt8](repeating: 0, count: (size + page - 1) / page)
        guard mincore(mapping, size, &vector) == 0 else { throw TestFailure("mincore failed: errno \(errno)") }
        return vector.filter { $0 & 1 != 0 }.count * page
    }

    func diskUsage(_ path: String) throws -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { throw TestFailure("stat \(path): errno \(errno)") }
        return Int(info.st_blocks) * 512
    }
}

/// Each way a disk can be wrong ends Ebb with one clear line, before the guest runs.
@Suite(.serialized)
struct DiskInputTests {
    func expectFailure(_ disk: String, status: Int32 = 1, saying text: String) throws {
        try requireTestKernel()
        let result = try runEbb(["run", "--kernel", testKernelELF, "--disk", disk], seconds: 30)
        #expect(result.status == status, "status \(result.status) for --disk \(disk): \(result.stderr)")
        #expect(result.stderr.contains(text), "expected '\(text)' in: \(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count <= 3, "more than one line of error: \(result.stderr)")
    }

    @Test func missingImage() throws {
        try expectFailure("/nonexistent/disk.img", saying: "disk image '/nonexistent/disk.img': no such file")
    }

    @Test func directory() throws {
        let scratch = try DiskScratch("dir")
        try expectFailure(scratch.directory.path, saying: "is a directory, not a disk image")
    }

    @Test func sizeNotAMultipleOf512() throws {
        let scratch = try DiskScratch("odd")
        let path = try scratch.image(bytes: [UInt8](repeating: 0, count: 1000))
        try expectFailure(path, saying: "its size, 1000 bytes, is not a multiple of 512")
    }

    @Test func badOptions() throws {
        try expectFailure("/tmp/x.img,cache=sometimes", status: 64, saying: "--disk cache must be none or writeback, not 'sometimes'")
        try expectFailure("/tmp/x.img,readonly=yes", status: 64, saying: "--disk readonly must be on or off")
        try expectFailure("/tmp/x.img,format=qcow2", status: 64, saying: "--disk has no option 'format'")
    }

    /// An immutable file cannot be opened for writing, even by root (chattr +i).
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/chattr"), "needs root and chattr"))
    func noPermissionToWrite() throws {
        let scratch = try DiskScratch("immutable")
        let path = try scratch.image(size: 4096)
        try runTool("/usr/bin/chattr", ["+i", path])
        defer { try? runTool("/usr/bin/chattr", ["-i", path]) }
        try expectFailure(path, saying: "no permission to open it for writing (readonly=on opens it read-only)")
        // Read-only, it can be used.
        try requireTestKernel()
        let result = try runEbb(["run", "--kernel", testKernelELF, "--disk", "\(path),readonly=on", "--cmdline", "ebb.scenario=blk-read"], seconds: 60)
        #expect(result.status == 0, "\(result.stderr)")
    }

    /// A second Ebb may not open an image the first holds read-write; two readers share one.
    @Test(.enabled(if: kvmAvailable, kvmSkipReason))
    func imageInUseByAnotherProcess() throws {
        try requireTestKernel()
        let scratch = try DiskScratch("locked")
        let path = try scratch.image(size: 1 << 20)
        let holder = try EbbProcess(["run", "--kernel", testKernelELF, "--disk", path, "--cmdline", "ebb.scenario=echo"])
        #expect(holder.wait(seconds: 30) { $0.contains("echo: ready") }, "\(holder.stderr)")
        try expectFailure(path, saying: "in use by another process, which holds a lock on it")
        try expectFailure("\(path),readonly=on", saying: "in use by another process, which holds a write lock on it")
        holder.type("q")
        #expect(holder.finish(seconds: 30).status == 0)

        let reader = try EbbProcess(["run", "--kernel", testKernelELF, "--disk", "\(path),readonly=on", "--cmdline", "ebb.scenario=echo"])
        #expect(reader.wait(seconds: 30) { $0.contains("echo: ready") }, "\(reader.stderr)")
        let second = try runEbb(["run", "--kernel", testKernelELF, "--disk", "\(path),readonly=on", "--cmdline", "ebb.scenario=blk-read"], seconds: 60)
        #expect(second.status == 0, "two read-only users: \(second.stderr)")
        reader.type("q")
        #expect(reader.finish(seconds: 30).status == 0)
    }

    func runTool(_ tool: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestFailure("\(tool) \(arguments) failed") }
    }
}
