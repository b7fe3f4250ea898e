import Foundation
import Testing

/// The small kernel built from Debian's unmodified 6.1 source by guest/build-linux-kernel.sh.
func smallLinuxKernel() throws -> String {
    let script = packageRoot.appendingPathComponent("guest/build-linux-kernel.sh").path
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = [script]
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0,
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VMLINUX=") }) else {
        throw TestFailure("guest/build-linux-kernel.sh failed (\(process.terminationStatus)): run it to see why")
    }
    return String(line.dropFirst("VMLINUX=".count))
}

extension HeavyGuestTests {
    /// Linux's own virtio_mmio, virtio_balloon and page_reporting on Ebb's devices, with the kernel
    /// file unmodified (Ebb passes its int3 self-test as hardware would).
    @Suite(.enabled(if: kvmAvailable, kvmSkipReason), .serialized)
    struct LinuxDriverTests {
        /// Idle after the initcalls with no root device, so workqueues (and page reporting) keep running.
        static let commandLine = "console=ttyS0 rootdelay=100000 initcall_blacklist=pty_init,blake2s_mod_init percpu_alloc=page"

        struct Stages { var firstLine: Double?; var probe: Double?; var firstReport: Double?; var returned: Double? }

        func boot(memory: String, memoryBytes: UInt64, cpus: Int, returnedFraction: Double) throws -> (Stages, EbbProcess.Result, UInt64) {
            let kernel = try smallLinuxKernel()
            let socket = FileManager.default.temporaryDirectory.appendingPathComponent("ebb-linux-\(getpid())-\(cpus).sock").path
            let started = Date()
            let ebb = try EbbProcess(["run", "--kernel", kernel, "--memory", memory, "--cpus", "\(cpus)", "--prefault",
                                      "--api-socket", socket, "--cmdline", Self.commandLine])
            var stages = Stages()
            let sampler = RSSSampler(pid: ebb.pid, interval: 0.1)
            var peak: UInt64 = 0
            // Generous: on a loaded kvm_pvm host the balloon was probed after 100-130 s (36 s on a
            // quiet one), and a 2-vCPU boot once stalled at SMP bring-up past 300 s (2026-12-02).
            let deadline = Date().addingTimeInterval(600)
            while Date() < deadline {
                let now = Date().timeIntervalSince(started)
                let out = ebb.stdout
                if stages.firstLine == nil, out.contains("\n") { stages.firstLine = now }
                if stages.probe == nil, out.contains("Free page reporting enabled") { stages.probe = now }
                if stages.firstReport == nil, let stats = try? unixHTTP(socket, "GET", "/balloon/statistics"),
                   stats.body.contains("\"free_page_reports\":"), !stats.body.contains("\"free_page_reports\":0,") {
                    stages.firstReport = now
                }
                let samples = sampler.samplesSoFar
                peak = max(peak, RSSSampler.peak(samples))
                if stages.firstReport != nil, let last = samples.last?.residentBytes,
                   Double(peak - min(last, peak)) >= returnedFraction * Double(memoryBytes) {
                    stages.returned = now
                    break
                }
                if ebb.stdout.contains("Kernel panic") { break }
                Thread.sleep(forTimeInterval: 0.5)
            }
            _ = sampler.stop()
            ebb.signal(SIGTERM)
            let result = ebb.finish(seconds: 30)
            func seconds(_ value: Double?) -> String { value.map { String(format: "%.1f s", $0) } ?? "never" }
            print("Linux \(memory), \(cpus) vCPU: first line \(seconds(stages.firstLine)), balloon probed \(seconds(stages.probe)), first report \(seconds(stages.firstReport)), \(Int(returnedFraction * 100))% of RAM returned \(seconds(stages.returned)); peak RSS \(peak >> 20) MiB")
            return (stages, result, peak)
        }

        @Test(arguments: [1, 2])
        func linuxReportsFreeMemoryAndTheHostGetsItBack(cpus: Int) throws {
            let (stages, result, peak) = try boot(memory: "512M", memoryBytes: 512 * mebibyte, cpus: cpus, returnedFraction: 0.8)
            #expect(stages.probe != nil, "no 'Free page reporting enabled':\n\(result.stdout.suffix(3000))\n\(result.stderr)")
            #expect(result.stderr.contains("virtio-balloon: driver ready"), "Linux's virtio_mmio never drove the device: \(result.stderr)")
            #expect(stages.firstReport != nil, "Ebb's counters show no report from Linux")
            #expect(peak >= 512 * mebibyte, "prefault should make all RAM resident (peak \(peak >> 20) MiB)")
            #expect(stages.returned != nil, "ebb's RSS did not fall by 80% of guest RAM")
            #expect(!result.stderr.contains("needs reset"), "\(result.stderr)")
            // KVM's own statistics, one halted share per vCPU: Linux idles in HLT between its work.
            let halted = result.stderr.split(separator: "\n").first { $0.contains("vCPUs halted (KVM's halt_wait_ns") }
            #expect(halted.map { $0.split(separator: "%").count - 1 } == cpus, "\(result.stderr)")
            // The kernel has CONFIG_X86_MPPARSE: it finds Ebb's MP table instead of scanning the BIOS area.
            #expect(result.stdout.contains("found SMP MP-table at [mem 0x000f0000-0x000f000f]"), "\(result.stdout.prefix(3000))")
        }

        /// Linux's virtio_blk binds Ebb's disk and reads the MBR the test wrote: one Linux partition.
        @Test func linuxBindsTheDiskAndReadsItsPartitionTable() throws {
            let kernel = try smallLinuxKernel()
            let scratch = try DiskScratch("linux")
            var image = [UInt8](repeating: 0, count: 8 << 20)
            let entry = 446
            image[entry + 4] = 0x83
            image.replaceSubrange(entry + 8..<entry + 16, with: littleEndian32(2048) + littleEndian32(16384 - 2048))
            image[510] = 0x55
            image[511] = 0xaa
            let path = try scratch.image(bytes: image)
            let ebb = try EbbProcess(["run", "--kernel", kernel, "--memory", "256M", "--disk", "\(path),serial=ebb-linux-disk",
                                      "--cmdline", Self.commandLine])
            let found = ebb.wait(seconds: 300) { $0.contains("vda: vda1") }
            ebb.signal(SIGTERM)
            let result = ebb.finish(seconds: 30)
            #expect(found, "no 'vda: vda1':\n\(result.stdout.suffix(3000))\n\(result.stderr)")
            #expect(result.stdout.contains("[vda] 16384 512-byte logical blocks"), "\(result.stdout.suffix(3000))")
            #expect(result.stderr.contains("virtio-blk '\(path)': driver ready"), "\(result.stderr)")
            #expect(!result.stderr.contains("needs reset"), "\(result.stderr)")
        }

        func littleEndian32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

        @Test func a128MiBGuestReportsToo() throws {
            let (stages, result, _) = try boot(memory: "128M", memoryBytes: 128 * mebibyte, cpus: 1, returnedFraction: 0.5)
            #expect(stages.firstReport != nil, "no report from a 128 MiB guest:\n\(result.stdout.suffix(2000))\n\(result.stderr)")
        }
    }
}
