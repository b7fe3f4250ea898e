import Foundation
import Testing

/// Every way a user can get the command line wrong ends in one clear line and a non-zero status.
/// Each test gets a scratch directory of its own, removed when it ends.
@Suite(.serialized)
final class BadInputTests {
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ebb-bad-input-\(getpid())-\(UUID().uuidString)")

    init() throws {
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(at: scratch)
    }

    func file(_ name: String, _ bytes: [UInt8]) throws -> String {
        let url = scratch.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    func expectFailure(_ arguments: [String], status: Int32 = 1, saying text: String,
                       environment: [String: String] = [:]) throws {
        let result = try runEbb(["run"] + arguments, seconds: 30, environment: environment)
        #expect(result.status == status, "status \(result.status) for \(arguments): \(result.stderr)")
        #expect(result.stderr.contains(text), "expected '\(text)' in: \(result.stderr)")
    }

    @Test func loggerMetricsAndNoAPIOptions() throws {
        try expectFailure(["--no-api"], status: 64, saying: "--no-api needs --config-file")
        try expectFailure(["--level", "Loud", "--log-path", "/tmp/x"], status: 64, saying: "--level 'Loud' is not one of Error, Warning, Info, Debug, Trace, Off")
        try expectFailure(["--show-level"], status: 64, saying: "--level, --show-level and --show-log-origin need --log-path")
        try expectFailure(["--log-path", "/nonexistent/dir/log"], saying: "error: logger: cannot open '/nonexistent/dir/log' for writing: No such file or directory")
        try expectFailure(["--metrics-path", scratch.path], saying: "error: metrics: cannot open '\(scratch.path)' for writing: Is a directory")
    }

    @Test func seccompSettings() throws {
        try expectFailure(["--seccomp", "strict"], status: 64, saying: "--seccomp")
        try expectFailure([], saying: "error: EBB_SECCOMP='strict' is not on, off or log", environment: ["EBB_SECCOMP": "strict"])
    }

    @Test func missingKernel() throws {
        try expectFailure(["--kernel", "/nonexistent/vmlinuz"], saying: "kernel '/nonexistent/vmlinuz' does not exist")
    }

    @Test func kernelThatIsNeitherBzImageNorELF() throws {
        let path = try file("notes.txt", Array(String(repeating: "not a kernel\n", count: 100).utf8))
        try expectFailure(["--kernel", path], saying: "not a Linux bzImage nor an ELF kernel with a PVH entry note")
    }

    @Test func kernelWithTooOldBootProtocol() throws {
        try requireTestKernel()
        var image = [UInt8](try Data(contentsOf: URL(fileURLWithPath: testKernelBzImage)))
        image[0x206] = 0x0b // protocol 2.11: no 64-bit entry guarantee
        try expectFailure(["--kernel", try file("old.bzImage", image)], saying: "boot protocol 2.11 is too old")
    }

    @Test func truncatedBzImage() throws {
        try requireTestKernel()
        let image = [UInt8](try Data(contentsOf: URL(fileURLWithPath: testKernelBzImage)))
        try expectFailure(["--kernel", try file("short.bzImage", Array(image.prefix(0x300)))], saying: "truncated")
    }

    @Test func elfWithoutPVHNote() throws {
        // This test binary's own ELF has no Xen note.
        try expectFailure(["--kernel", "/bin/true"], saying: "no PVH entry note")
    }

    @Test func memoryThatIsNotASize() throws {
        try expectFailure(["--memory", "lots"], status: 64, saying: "memory 'lots' is not a size")
    }

    @Test func memoryTooSmallOrTooLarge() throws {
        try requireTestKernel()
        try expectFailure(["--kernel", testKernelELF, "--memory", "8M"], saying: "guest memory 8 MiB is too small")
        try expectFailure(["--kernel", testKernelELF, "--memory", "64T"], saying: "more than this host's")
    }

    @Test func initrdThatDoesNotFit() throws {
        try requireTestKernel()
        let initrd = try file("big.initrd", [UInt8](repeating: 0x42, count: 40 << 20))
        try expectFailure(["--kernel", testKernelELF, "--memory", "32M", "--initrd", initrd], saying: "the initrd (40 MiB) does not fit")
        try expectFailure(["--kernel", testKernelELF, "--initrd", "/nonexistent.img"], saying: "initrd '/nonexistent.img' does not exist")
    }

    @Test func cpuCountOutOfRange() throws {
        try requireTestKernel()
        try expectFailure(["--kernel", testKernelELF, "--cpus", "0"], status: 64, saying: "--cpus must be at least 1")
        try expectFailure(["--kernel", testKernelELF, "--cpus", "1000"], saying: "1000 vCPUs requested")
    }

    @Test func missingKVMDevice() throws {
        try requireTestKernel()
        try expectFailure(["--kernel", testKernelELF, "--kvm-device", "/nonexistent/kvm"], saying: "/nonexistent/kvm does not exist")
        try expectFailure(["--kernel", testKernelELF], saying: "/dev/kvm-missing does not exist",
                          environment: ["EBB_KVM_DEVICE": "/dev/kvm-missing"])
        try expectFailure(["--kernel", testKernelELF, "--kvm-device", "/dev/null"], saying: "is not a usable KVM device")
    }

    /// A user outside the kvm group: run ebb as `nobody` where /dev/kvm is root-only.
    @Test(.enabled(if: kvmAvailable && getuid() == 0, "needs root to drop to nobody, and /dev/kvm"))
    func noPermissionForKVM() throws {
        try requireTestKernel()
        var status = stat()
        guard stat("/dev/kvm", &status) == 0, status.st_mode & 0o006 == 0 else { return } // world-accessible here
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", try ebbExecutable(), "run", "--kernel", "/bin/true"]
        let kernelCopy = try file("kernel.elf", [UInt8](try Data(contentsOf: URL(fileURLWithPath: testKernelELF))))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: scratch.path)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: kernelCopy)
        process.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", try ebbExecutable(), "run", "--kernel", kernelCopy]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = Pipe()
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 1, "\(text)")
        #expect(text.contains("no permission to open /dev/kvm"), "\(text)")
    }
}
