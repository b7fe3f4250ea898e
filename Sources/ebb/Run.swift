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
            64 bad arguments, 148 a thread made a system call its seccomp filter refuses (the line before \
            names it).
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

    @Option(help: "Number of vCPUs (default 1).")
    var cpus: Int?

    @Option(help: ArgumentHelp("A virtio-blk disk backed by a raw image: PATH[,readonly=on][,cache=none|writeback][,serial=ID]; repeatable, the first is /dev/vda. cache=none (default) is O_DIRECT, as QEMU's.", valueName: "disk"))
    var disk: [String] = []

    @Option(help: ArgumentHelp("A virtio-net NIC on a host tap device: tap=NAME[,mac=MAC]; repeatable, the first is eth0. Create the tap first (ip tuntap add dev NAME mode tap).", valueName: "net"))
    var net: [String] = []

    @Option(help: "A Firecracker-format JSON config file (boot-source, machine-config, balloon, drives); options given here override it. Without a balloon section there is no balloon.")
    var configFile: String?

    @Option(help: "KVM device (also $EBB_KVM_DEVICE).")
    var kvmDevice: String?

    @Flag(help: "Populate all guest RAM before boot, so the guest takes no page faults at run time.")
    var prefault = false

    @Option(help: "Back guest RAM with transparent huge pages (on|off, default on): faster first touch and reclaim.")
    var hugePages: Switch?

    @Option(help: "The virtio-balloon device (on|off, default on).")
    var balloon: Switch?

    @Option(help: "Free page reporting on the balloon (on|off, default on).")
    var freePageReporting: Switch?

    @Option(help: "Smallest block the guest reports, as a page order (9 = 2 MiB); passed on the kernel command line.")
    var reportingOrder: Int?

    @Option(help: "Memory the guest should give to the balloon at start, e.g. 256M.")
    var balloonTarget: String?

    @Option(help: "Ask the guest for balloon statistics every this many seconds (0: never).")
    var statsInterval: Double?

    @Option(help: "Agentless reclaim (on|off, default on): squeeze the guest with the balloon and let go at once, so its cold page cache and scattered free pages go back to the host.")
    var idleReclaim: Switch?

    @Option(help: "Seconds between the agentless reclaim's looks at the guest (default 5).")
    var idleReclaimInterval: Double?

    @Option(help: "Page cache the agentless reclaim leaves the guest, e.g. 64M (default 4M; raised when the guest reads back what it gave up).")
    var idleReclaimFloor: String?

    @Option(help: "On kvm_pvm hosts, add the kernel options Linux needs there (on|off).")
    var hostKernelOptions: Switch = .on

    @Option(help: "Serve the control API (Firecracker's conventions: GET/PATCH /balloon, GET /balloon/statistics, GET /machine-config) on this Unix socket.")
    var apiSocket: String?

    @Option(name: .customLong("api-sock"), help: ArgumentHelp("Firecracker's flag: serve the API on this Unix socket; with no --kernel and no --config-file, wait there for the machine's configuration and an InstanceStart (PUT /boot-source, /machine-config, /drives/{id}, /balloon, /actions).", valueName: "path"))
    var apiSock: String?

    @Option(help: "Firecracker's --id: the instance id GET / answers (default ebb).")
    var id: String?

    @Flag(help: "Firecracker's --no-api: serve no API; needs --config-file.")
    var noApi = false

    @Option(help: ArgumentHelp("Firecracker's --log-path: also write Ebb's messages to this file or named pipe.", valueName: "path"))
    var logPath: String?

    @Option(help: "Firecracker's --level for --log-path: Error, Warning, Info (default), Debug, Trace or Off.")
    var level: String?

    @Flag(help: "Firecracker's --show-level: log lines name their level.")
    var showLevel = false

    @Flag(help: "Firecracker's --show-log-origin: log lines name the source file and line.")
    var showLogOrigin = false

    @Option(help: ArgumentHelp("Firecracker's --metrics-path: a JSON line of counters to this file or named pipe every 60 s, on FlushMetrics and at exit.", valueName: "path"))
    var metricsPath: String?

    enum SeccompSwitch: String, ExpressibleByArgument {
        case on, off, log
        var mode: Sandbox.Mode {
            switch self {
            case .on: .on
            case .off: .off
            case .log: .log
            }
        }
    }

    @Option(help: "Confine each of Ebb's threads with a seccomp filter of the system calls it needs (on|off|log, default on; also $EBB_SECCOMP): a call outside it stops Ebb with status 148; log lets it through and the kernel logs it (dmesg).")
    var seccomp: SeccompSwitch?

    @Flag(inversion: .prefixedNo, help: "Print host memory as it changes (default: on for the demo).")
    var memoryProgress: Bool?

    /// The demo: Ebb's test kernel touching, freeing and reporting 512 MiB of a 1 GiB guest.
    enum Demo {
        static let memoryBytes: UInt64 = 1 << 30
        static let commandLine = "ebb.scenario=reclaim ebb.touch=512 ebb.hold=2"
    }

    var isDemo: Bool { kernel == nil && cmdline == nil && configFile == nil }

    func validate() throws {
        if let memory, parseSize(memory) == nil {
            throw ValidationError("memory '\(memory)' is not a size (use e.g. 512M or 2G)")
        }
        if let balloonTarget, balloonTarget != "0", parseSize(balloonTarget) == nil {
            throw ValidationError("balloon target '\(balloonTarget)' is not a size (use e.g. 256M)")
        }
        if let cpus, cpus < 1 { throw ValidationError("--cpus must be at least 1, not \(cpus)") }
        if let reportingOrder, !(0...10).contains(reportingOrder) {
            throw ValidationError("--reporting-order must be between 0 and 10, not \(reportingOrder)")
        }
        if let statsInterval, !(0...3600).contains(statsInterval) { throw ValidationError("--stats-interval must be 0 to 3600 seconds") }
        if balloon == .off, balloonTarget != nil { throw ValidationError("--balloon-target needs the balloon (--balloon on)") }
        if let idleReclaimInterval, !(0.1...3600).contains(idleReclaimInterval) {
            throw ValidationError("--idle-reclaim-interval must be 0.1 to 3600 seconds")
        }
        if let idleReclaimFloor, idleReclaimFloor != "0", parseSize(idleReclaimFloor) == nil {
            throw ValidationError("idle reclaim floor '\(idleReclaimFloor)' is not a size (use e.g. 64M)")
        }
        if noApi, configFile == nil { throw ValidationError("--no-api needs --config-file: without the API, the machine comes from the file") }
        if noApi, apiSock != nil || apiSocket != nil { throw ValidationError("--no-api and --api-sock contradict each other: give one") }
        if let level, LogLevel.parse(level) == nil {
            throw ValidationError("--level '\(level)' is not one of Error, Warning, Info, Debug, Trace, Off")
        }
        if logPath == nil, level != nil || showLevel || showLogOrigin {
            throw ValidationError("--level, --show-level and --show-log-origin need --log-path")
        }
        if idleReclaim == .off, idleReclaimInterval != nil || idleReclaimFloor != nil {
            throw ValidationError("--idle-reclaim-interval and --idle-reclaim-floor need --idle-reclaim on")
        }
        for text in disk {
            do { _ = try parseDisk(text) } catch { throw ValidationError(error.description) }
        }
        for text in net {
            do { _ = try parseNet(text) } catch { throw ValidationError(error.description) }
        }
    }

    /// `ebb --api-sock PATH` with nothing to boot: the machine comes from the API, as a
    /// Firecracker client configures one.
    var waitsForTheAPI: Bool { apiSock != nil && kernel == nil && configFile == nil }

    func run() throws {
        ThreadRegistry.registerCurrentThread(as: .main)
        let fromEnvironment = environment("EBB_SECCOMP")
        guard let confinement = seccomp ?? (fromEnvironment.map(SeccompSwitch.init(rawValue:)) ?? .on) else {
            fail("EBB_SECCOMP='\(fromEnvironment ?? "")' is not on, off or log")
        }
        do { try Sandbox.enable(confinement.mode) } catch { fail("\(error) (--seccomp off runs without filters)") }
        if apiSock != nil && apiSocket != nil { fail("--api-sock and --api-socket name the same thing: give one") }
        var resources = waitsForTheAPI ? apiBaseResources() : try resources()
        // The API serves from before the machine exists ("Not started"), as Firecracker's does;
        // the signals are blocked first, so that its thread inherits the mask.
        HostSignalWatcher.blockWatchedSignals()
        let control = ControlPlane(resources: resources)
        let observability = Observability(control: control, instanceID: id ?? "ebb")
        configureObservability(observability)
        // The last metrics line goes out however Ebb ends, a failure included.
        defer { observability.metrics.stop() }
        let api: APIServer?
        let socketPath = apiSock ?? apiSocket
        do {
            api = try socketPath.map { try APIServer(socketPath: $0, routes: APIRoutes(control: control, observability: observability)) }
        } catch {
            fail("cannot serve the API on '\(socketPath ?? "")': \(error)")
        }
        if waitsForTheAPI {
            report("waiting on \(socketPath ?? "") for the machine's configuration and InstanceStart")
            switch waitForInstanceStart(control) {
            case let .started(configured): resources = configured
            case let .stopped(signal):
                api?.stop()
                report("stopped by signal \(signal) before the machine started")
                throw ExitCode(128 + signal)
            }
        }
        let configuration: MachineConfiguration
        do { configuration = try resources.configuration() } catch {
            api?.stop()
            fail("\(error)")
        }
        let machine: Machine
        do {
            machine = try Machine(configuration: configuration, output: writeToStandardOutput)
        } catch {
            api?.stop()
            fail("\(error)")
        }
        report("host profile: \(HostProfile.current.description)")
        if !machine.addedKernelOptions.isEmpty {
            report("added kernel options for kvm_pvm: \(machine.addedKernelOptions.joined(separator: " ")) (--host-kernel-options off to leave them out)")
        }
        control.attach(machine)
        api?.confine()
        let progress = (memoryProgress ?? isDemo) ? MemoryProgress(machine: machine) : nil
        try progress?.start()
        let started = ContinuousClock.now
        let outcome = Result { try machine.run() }
        let ran = ContinuousClock.now - started
        progress?.stop()
        api?.stop()
        let exit: MachineExit
        do { exit = try outcome.get() } catch { fail("\(error)") }
        printSummary(machine: machine, exit: exit, ran: ran)
        throw ExitCode(exit.exitCode)
    }

    /// The logger and the metrics of the command line, then of the config file.
    func configureObservability(_ observability: Observability) {
        do {
            if let logPath {
                let chosen = level.flatMap(LogLevel.parse) ?? .info
                try observability.configureLogger(LoggerSettings(path: logPath, level: chosen, showLevel: showLevel, showOrigin: showLogOrigin))
            }
            if let metricsPath { try observability.configureMetrics(path: metricsPath) }
            if let configFile {
                let file: ConfigFile
                do { file = try ConfigFile.load(path: configFile) } catch { fail("config file '\(configFile)': \(error)") }
                try observability.configure(from: file)
            }
        } catch {
            fail("\(error)")
        }
    }

    /// What the API starts from: Ebb's defaults and the host options given here (the machine
    /// itself comes from the API's PUTs).
    func apiBaseResources() -> MachineResources {
        var resources = MachineResources()
        applyHostOptions(to: &resources, usesTestKernel: false)
        return resources
    }

    /// The options about the host rather than the machine (KVM device, prefault, huge pages,
    /// kvm_pvm kernel options), over what the config file or the defaults said.
    func applyHostOptions(to resources: inout MachineResources, usesTestKernel: Bool) {
        resources.kvmPath = kvmDevice ?? environment("EBB_KVM_DEVICE") ?? resources.kvmPath
        resources.prefault = prefault || resources.prefault
        if let hugePages { resources.hugePages = hugePages == .on }
        resources.addHostKernelOptions = hostKernelOptions == .on && !usesTestKernel
        applyReclaimOptions(to: &resources)
    }

    /// The agentless reclaim's options over the defaults (a machine without a balloon has none).
    func applyReclaimOptions(to resources: inout MachineResources) {
        guard idleReclaim != .off else {
            resources.idleReclaim = nil
            return
        }
        var settings = resources.idleReclaim ?? ReclaimSettings()
        if let idleReclaimInterval { settings.interval = .milliseconds(Int64(idleReclaimInterval * 1000)) }
        if let idleReclaimFloor { settings.cacheFloorBytes = parseSize(idleReclaimFloor) ?? 0 }
        resources.idleReclaim = settings
    }

    enum APIWait { case started(MachineResources), stopped(signal: Int32) }

    /// Waits for the API's InstanceStart, or a stop signal (which ends ebb with 128+N, as a stop
    /// of a running machine does).
    func waitForInstanceStart(_ control: ControlPlane) -> APIWait {
        var signals = sigset_t()
        sigemptyset(&signals)
        for number in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&signals, number) }
        var tick = timespec(tv_sec: 0, tv_nsec: 100_000_000)
        while control.phase == .configuring {
            let number = sigtimedwait(&signals, nil, &tick)
            if number > 0 { return .stopped(signal: number) }
        }
        return .started(control.resources)
    }

    /// The machine as the config file (if any) and then these options describe it: both go
    /// through `MachineResources`' setters, the options last so that they override the file.
    func resources() throws -> MachineResources {
        var resources = MachineResources()
        if let configFile {
            do { try ConfigFile.load(path: configFile).apply(to: &resources) } catch { fail("config file '\(configFile)': \(error)") }
        }
        let usesTestKernel = kernel == nil && resources.kernelPath == nil
        guard let kernelPath = kernel ?? resources.kernelPath ?? DefaultGuest.kernelPath() else {
            fail("no --kernel given and the default guest is not built: run guest/build-test-kernel.sh (or scripts/run)")
        }
        do {
            try resources.setBootSource(kernelPath: kernelPath, initrdPath: initrd ?? resources.initrdPath)
            resources.setCommandLine(commandLine(base: cmdline ?? (configFile != nil ? resources.commandLine : nil), usesTestKernel: usesTestKernel))
            try resources.setMachine(cpuCount: cpus, memoryBytes: memory.flatMap(parseSize) ?? (isDemo ? Demo.memoryBytes : nil))
            try resources.setBalloon(balloonOptions(from: resources.balloon))
            for text in disk { try resources.addDrive(parseDisk(text)) }
            for text in net { try resources.putNetworkInterface(.init(options: parseNet(text))) }
        } catch let error as ValidationError {
            throw error
        } catch {
            // A value no machine can have, as Machine itself would refuse it: status 1, one line.
            fail("\(error)")
        }
        applyHostOptions(to: &resources, usesTestKernel: usesTestKernel)
        return resources
    }

    /// The user's command line, or the demo's; plus the reporting order as Linux's parameter (as
    /// WSL2 sets it), which the test kernel reads too.
    func commandLine(base: String?, usesTestKernel: Bool) -> String {
        var line = base ?? (usesTestKernel ? Demo.commandLine : "console=ttyS0")
        if let reportingOrder { line += " page_reporting.page_reporting_order=\(reportingOrder)" }
        return line
    }

    /// The balloon the config file gave (or the default one), changed by the balloon options.
    func balloonOptions(from configured: BalloonDevice.Options?) throws -> BalloonDevice.Options? {
        var options = configured
        switch balloon {
        case .off?: options = nil
        case .on?: options = options ?? MachineResources.Defaults.balloon
        case nil: break
        }
        guard var options else {
            if freePageReporting != nil || balloonTarget != nil || statsInterval != nil {
                throw ValidationError("the balloon options need the balloon (--balloon on, or a balloon section in the config file)")
            }
            return nil
        }
        if let freePageReporting { options.freePageReporting = freePageReporting == .on }
        if let statsInterval { options.statisticsInterval = statsInterval > 0 ? .milliseconds(Int64(statsInterval * 1000)) : nil }
        if let balloonTarget { options.targetBytes = parseSize(balloonTarget) ?? 0 }
        return options
    }

    func printSummary(machine: Machine, exit: MachineExit, ran: Duration) {
        let memory = machine.sampleHostMemory()
        let unclaimed = machine.unclaimedAccesses
        reportHeldBackGuestLines()
        report("\(exit); host RSS \(formatBytes(memory.residentBytes)) (peak \(formatBytes(memory.peakResidentBytes)), \(formatBytes(memory.overheadBytes)) outside guest RAM); unclaimed accesses: \(unclaimed.io) port, \(unclaimed.mmio) MMIO")
        if machine.breakpointsInjectedCount > 0 {
            report("int3 passed to the guest as #BP \(machine.breakpointsInjectedCount) time(s) (kvm_pvm cannot emulate it)")
        }
        let time = machine.vcpuTime()
        let wall = Double(ran.components.seconds) + Double(ran.components.attoseconds) / 1e18
        if let halted = time.haltedNanoseconds, wall > 0 {
            let shares = halted.map { "\(Int((Double($0) / 1e9 / wall * 100).rounded()))%" }
            report("vCPUs halted (KVM's halt_wait_ns over \((wall * 10).rounded() / 10) s): \(shares.joined(separator: ", "))\(time.exits.map { "; \($0) exits" } ?? "")")
        }
        for disk in machine.disks {
            let c = disk.counters
            var line = "disk '\(disk.path)': \(c.reads) reads (\(formatBytes(c.bytesRead))), \(c.writes) writes (\(formatBytes(c.bytesWritten))), \(c.flushes) flushes, \(c.discards) discards, \(c.writeZeroes) write-zeroes; \(c.ioErrors) answered IOERR, \(c.unsupported) UNSUPP"
            if let broken = disk.brokenReason { line += "; left needing a reset: \(broken)" }
            report(line)
        }
        for nic in machine.networkInterfaces {
            let c = nic.counters
            var line = "net '\(nic.tap)': \(c.receivedFrames) frames received (\(formatBytes(c.receivedBytes))), \(c.sentFrames) sent (\(formatBytes(c.sentBytes))); \(c.malformedFrames) malformed and \(c.sendFailures) refused by the tap dropped, \(c.badReceiveChains) bad receive chains"
            if let broken = nic.brokenReason { line += "; left needing a reset: \(broken)" }
            report(line)
        }
        guard let counters = machine.balloonCounters else { return }
        var line = "memory: guest RAM \(formatBytes(machine.configuration.memoryBytes)); free page reporting: \(counters.reportedRanges) ranges, \(formatBytes(counters.reportedBytes)) reported, \(formatBytes(counters.discardedBytes)) discarded, \(counters.discardFailures) failures"
        if counters.inflatedPages + counters.deflatedPages > 0 {
            line += "; balloon: \(counters.inflatedPages) pages inflated (\(formatBytes(counters.inflateDiscardedBytes)) discarded in \(counters.inflateDiscardCalls) runs), \(counters.deflatedPages) deflated"
        }
        if let actual = machine.balloonActualBytes, actual > 0 { line += ", actual \(formatBytes(actual))" }
        report(line)
        if counters.statisticsUpdates > 0 {
            let values = BalloonStatTag.allCases.compactMap { tag in counters.guestStatistics[tag.rawValue].map { "\(tag.name)=\($0)" } }
            report("guest statistics (\(counters.statisticsUpdates) updates): \(values.joined(separator: " "))")
        }
        if let broken = machine.balloonBrokenReason { report("virtio-balloon was left needing a reset: \(broken)") }
        if let reclaim = machine.reclaimStatus {
            report("idle reclaim: \(reclaim.summary); free page reporting returned \(formatBytes(counters.reportReturnedBytes)); cache floor \(formatBytes(reclaim.floorBytes))")
        }
    }
}

@Sendable func writeToStandardOutput(_ byte: UInt8) {
    var value = byte
    _ = write(STDOUT_FILENO, &value, 1)
}

func environment(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}

func fail(_ message: String, file: String = #fileID, line: Int = #line) -> Never {
    report("error: \(message)", level: .error, file: file, line: line)
    // The console's atexit handler restores the terminal if it was put in raw mode.
    exit(1)
}
