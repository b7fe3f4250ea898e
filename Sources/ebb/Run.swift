#if canImport(Glibc)
import Glibc
#endif
import API
import ArgumentParser
import KVM
import Virtio
import VMM

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boot a kernel with its serial console on this terminal. With no --kernel: the reclaim demo.",
        discussion: """
            With no --kernel, Ebb boots its test kernel in a 1 GiB guest that touches 512 MiB, frees it and \
            reports it through the balloon, and shows the host memory coming back.

            Exit status: 0 the guest powered off (or Ctrl-A x), 1 Ebb could not start or run the guest, \
            2 the guest asked for a reset, 3 the guest crashed (triple fault), 128+N stopped by signal N, \
            64 bad arguments.
            """)

    enum Switch: String, ExpressibleByArgument { case on, off }

    @Option(help: "Kernel to boot: a bzImage, or an ELF with a PVH entry (vmlinux). Default: the test kernel.")
    var kernel: String?

    @Option(help: "Initial ramdisk for the kernel.")
    var initrd: String?

    @Option(help: "Kernel command line.")
    var cmdline: String?

    @Option(help: "Guest RAM, e.g. 512M or 2G (a bare number is MiB). Default: 512M, 1G for the demo.")
    var memory: String?

    @Option(help: "Number of vCPUs.")
    var cpus: Int = 1

    @Option(help: "KVM device (also $EBB_KVM_DEVICE).")
    var kvmDevice: String?

    @Flag(help: "Populate all guest RAM before boot, so the guest takes no page faults at run time.")
    var prefault = false

    @Option(help: "Back guest RAM with transparent huge pages (on|off): faster first touch and reclaim.")
    var hugePages: Switch = .on

    @Option(help: "The virtio-balloon device (on|off).")
    var balloon: Switch = .on

    @Option(help: "Free page reporting on the balloon (on|off).")
    var freePageReporting: Switch = .on

    @Option(help: "Smallest block the guest reports, as a page order (9 = 2 MiB); passed on the kernel command line.")
    var reportingOrder: Int?

    @Option(help: "Memory the guest should give to the balloon at start, e.g. 256M.")
    var balloonTarget: String?

    @Option(help: "Ask the guest for balloon statistics every this many seconds (0: never).")
    var statsInterval: Double = 0

    @Option(help: "On kvm_pvm hosts, add the kernel options Linux needs there (on|off).")
    var hostKernelOptions: Switch = .on

    @Option(help: "Serve the control API (Firecracker's conventions: GET/PATCH /balloon, GET /balloon/statistics, GET /machine-config) on this Unix socket.")
    var apiSocket: String?

    @Flag(inversion: .prefixedNo, help: "Print host memory as it changes (default: on for the demo).")
    var memoryProgress: Bool?

    var isDemo: Bool { kernel == nil && cmdline == nil }

    func validate() throws {
        if let memory, parseSize(memory) == nil {
            throw ValidationError("memory '\(memory)' is not a size (use e.g. 512M or 2G)")
        }
        if let balloonTarget, balloonTarget != "0", parseSize(balloonTarget) == nil {
            throw ValidationError("balloon target '\(balloonTarget)' is not a size (use e.g. 256M)")
        }
        guard cpus >= 1 else { throw ValidationError("--cpus must be at least 1, not \(cpus)") }
        if let reportingOrder, !(0...10).contains(reportingOrder) {
            throw ValidationError("--reporting-order must be between 0 and 10, not \(reportingOrder)")
        }
        guard statsInterval >= 0, statsInterval <= 3600 else { throw ValidationError("--stats-interval must be 0 to 3600 seconds") }
        if balloon == .off, balloonTarget != nil { throw ValidationError("--balloon-target needs the balloon (--balloon on)") }
    }

    func run() throws {
        let usesTestKernel = kernel == nil
        guard let kernelPath = kernel ?? DefaultGuest.kernelPath() else {
            fail("no --kernel given and the default guest is not built: run guest/build-test-kernel.sh (or scripts/run)")
        }
        var configuration = MachineConfiguration(
            kernelPath: kernelPath,
            initrdPath: initrd,
            commandLine: commandLine(usesTestKernel: usesTestKernel),
            memoryBytes: memory.flatMap(parseSize) ?? (isDemo ? 1 << 30 : 512 << 20),
            cpuCount: cpus,
            kvmPath: kvmDevice ?? environment("EBB_KVM_DEVICE") ?? KVMDevice.defaultPath,
            prefault: prefault,
            balloon: balloonOptions())
        configuration.addHostKernelOptions = hostKernelOptions == .on && !usesTestKernel
        configuration.hugePages = hugePages == .on

        let machine: Machine
        do {
            machine = try Machine(configuration: configuration, output: writeToStandardOutput)
        } catch {
            fail("\(error)")
        }
        report("host profile: \(HostProfile.current.description)")
        if !machine.addedKernelOptions.isEmpty {
            report("added kernel options for kvm_pvm: \(machine.addedKernelOptions.joined(separator: " ")) (--host-kernel-options off to leave them out)")
        }
        // Before the API and progress threads start, so that they inherit the mask too.
        HostSignalWatcher.blockWatchedSignals()
        let api: APIServer?
        do {
            api = try apiSocket.map { try APIServer(socketPath: $0, routes: APIRoutes(machine: machine)) }
        } catch {
            fail("cannot serve the API on '\(apiSocket ?? "")': \(error)")
        }
        let progress = (memoryProgress ?? isDemo) ? MemoryProgress(machine: machine) : nil
        try progress?.start()
        let outcome = Result { try machine.run() }
        progress?.stop()
        api?.stop()
        let exit: MachineExit
        do { exit = try outcome.get() } catch { fail("\(error)") }
        printSummary(machine: machine, exit: exit)
        throw ExitCode(exit.exitCode)
    }

    /// The user's command line, or the demo's; plus the reporting order as Linux's parameter (as
    /// WSL2 sets it), which the test kernel reads too.
    func commandLine(usesTestKernel: Bool) -> String {
        var line = cmdline ?? (usesTestKernel ? "ebb.scenario=reclaim ebb.touch=512 ebb.hold=2" : "console=ttyS0")
        if let reportingOrder { line += " page_reporting.page_reporting_order=\(reportingOrder)" }
        return line
    }

    func balloonOptions() -> BalloonDevice.Options? {
        guard balloon == .on else { return nil }
        return BalloonDevice.Options(
            freePageReporting: freePageReporting == .on,
            statisticsInterval: statsInterval > 0 ? .milliseconds(Int64(statsInterval * 1000)) : nil,
            targetBytes: balloonTarget.flatMap(parseSize) ?? 0)
    }

    func printSummary(machine: Machine, exit: MachineExit) {
        let memory = machine.sampleHostMemory()
        let unclaimed = machine.unclaimedAccesses
        report("\(exit); host RSS \(formatBytes(memory.residentBytes)) (peak \(formatBytes(memory.peakResidentBytes)), \(formatBytes(memory.overheadBytes)) outside guest RAM); unclaimed accesses: \(unclaimed.io) port, \(unclaimed.mmio) MMIO")
        if machine.breakpointsInjectedCount > 0 {
            report("int3 passed to the guest as #BP \(machine.breakpointsInjectedCount) time(s) (kvm_pvm cannot emulate it)")
        }
        guard let counters = machine.balloonCounters else { return }
        var line = "memory: guest RAM \(formatBytes(machine.configuration.memoryBytes)); free page reporting: \(counters.reportedRanges) ranges, \(formatBytes(counters.reportedBytes)) reported, \(formatBytes(counters.discardedBytes)) discarded, \(counters.discardFailures) failures"
        if counters.inflatedPages + counters.deflatedPages > 0 {
            line += "; balloon: \(counters.inflatedPages) pages inflated (\(formatBytes(counters.inflateDiscardedBytes)) discarded), \(counters.deflatedPages) deflated"
        }
        if let actual = machine.balloonActualBytes, actual > 0 { line += ", actual \(formatBytes(actual))" }
        report(line)
        if counters.statisticsUpdates > 0 {
            let values = BalloonStatTag.allCases.compactMap { tag in counters.guestStatistics[tag.rawValue].map { "\(tag.name)=\($0)" } }
            report("guest statistics (\(counters.statisticsUpdates) updates): \(values.joined(separator: " "))")
        }
        if let broken = machine.balloonBrokenReason { report("virtio-balloon was left needing a reset: \(broken)") }
    }
}

@Sendable func writeToStandardOutput(_ byte: UInt8) {
    var value = byte
    _ = write(STDOUT_FILENO, &value, 1)
}

func environment(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}

func fail(_ message: String) -> Never {
    report("error: \(message)")
    // The console's atexit handler restores the terminal if it was put in raw mode.
    exit(1)
}
