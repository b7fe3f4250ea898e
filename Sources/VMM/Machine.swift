#if canImport(Glibc)
import Glibc
#endif
import CKVM
import Devices
import GuestMemory
import KVM
import LinuxBoot
import Synchronization
import Virtio

/// One virtual machine, assembled once from a `MachineConfiguration` and run to its end.
public final class Machine: @unchecked Sendable {
    public let configuration: MachineConfiguration
    /// "bzImage" or "PVH ELF". The image itself is not kept: once loaded it would only cost RSS.
    public let kernelFormat: String
    let kvm: KVMDevice
    let vm: VirtualMachine
    let memory: GuestMemory
    let vcpus: [VCPU]
    /// Each vCPU's binary statistics, opened before it first runs: the ioctl that opens them takes
    /// the vCPU's mutex, which KVM_RUN holds (the reclaim policy's thread blocked in it for as long
    /// as a vCPU stayed in the guest); reading an open one does not.
    let vcpuStatistics: [KVMStatistics?]
    let ioBus: Bus
    let mmioBus: Bus
    let serial: Serial8250
    let keyboard: I8042Device
    let timers: TimerThread
    /// The virtio devices, in slot order.
    let virtioDevices: [AttachedVirtioDevice]
    /// The command line the guest got, and what Ebb added to it for this host's KVM.
    public let commandLine: String
    public private(set) var addedKernelOptions: [String] = []
    /// The agentless reclaim, when it is on and there is a balloon.
    private(set) var reclaimer: IdleReclaimer?

    /// The balloon's statistics interval as PATCH /balloon/statistics last set it; nil: as built.
    let changedStatisticsInterval = Mutex<Duration?>(nil)

    private let exitState = Mutex<MachineExit?>(nil)
    private let stopping = Atomic<Bool>(false)
    private let threads = Mutex<[OSThread]>([])
    private let breakpointsInjected = Atomic<UInt64>(0)
    let pauseGate = PauseGate()

    /// Largest vCPU count: APIC ids must fit the MADT's 8-bit field, and 0xff is the broadcast id.
    static let maximumCPUs = 254
    /// KVM_CAP_MAX_VCPUS / KVM_CAP_NR_VCPUS.
    static let capabilityMaxVCPUs: Int32 = 66
    static let capabilityRecommendedVCPUs: Int32 = 9

    /// Checks the configuration, opens KVM and builds the whole machine; nothing runs yet.
    /// `output` receives every byte the guest writes to its serial port.
    public init(configuration: MachineConfiguration, output: @escaping @Sendable (UInt8) -> Void) throws {
        self.configuration = configuration
        let memoryBytes = configuration.memoryBytes
        guard memoryBytes >= Layout.minimumMemoryBytes else {
            throw ConfigurationError.memoryTooSmall(bytes: memoryBytes, minimum: Layout.minimumMemoryBytes)
        }
        guard memoryBytes % GuestPage.bytes == 0 else { throw ConfigurationError.memoryNotPageAligned(bytes: memoryBytes) }
        let hostMemory = hostPhysicalMemoryBytes()
        guard memoryBytes <= hostMemory else { throw ConfigurationError.memoryTooLarge(bytes: memoryBytes, maximum: hostMemory) }

        let kernel = try KernelImage(bytes: try readWholeFile(configuration.kernelPath, role: "kernel"))
        kernelFormat = kernel.formatName
        let initrd = try configuration.initrdPath.map { try readWholeFile($0, role: "initrd") }

        kvm = try KVMDevice(path: configuration.kvmPath)
        let kvmLimit = Int(max(kvm.checkExtension(Self.capabilityMaxVCPUs), kvm.checkExtension(Self.capabilityRecommendedVCPUs), 1))
        let cpuLimit = min(Self.maximumCPUs, kvmLimit)
        guard (1...cpuLimit).contains(configuration.cpuCount) else {
            throw ConfigurationError.cpuCount(requested: configuration.cpuCount, maximum: cpuLimit)
        }

        vm = try kvm.createVM()
        try vm.setTSSAddress(Layout.kvmTSSAddress)
        try vm.setIdentityMapAddress(Layout.kvmIdentityMapAddress)
        try vm.createInterruptController()
        try vm.createPIT()

        let ramLayout = GuestRAMLayout(memoryBytes: memoryBytes)
        memory = try GuestMemory(regions: ramLayout.regions, hugePages: configuration.hugePages, prefault: configuration.prefault)
        for (slot, region) in memory.regions.enumerated() {
            try vm.setMemoryRegion(slot: UInt32(slot), guestAddress: region.guestRange.start.value,
                                   sizeBytes: region.guestRange.length, hostAddress: memory.hostAddress(of: region))
        }

        // Devices report guest requests back here; the machine does not exist yet, so go through a box.
        let requests = SystemRequestRelay()
        let devices = try DeviceManager(vm: vm, memory: memory, devices: configuration.devices,
                                        output: output, onSystemRequest: { requests.forward($0) })
        ioBus = devices.ioBus
        mmioBus = devices.mmioBus
        serial = devices.serial
        keyboard = devices.keyboard
        timers = devices.timers
        virtioDevices = devices.virtioDevices

        let tables = devices.acpiTables(cpuCount: configuration.cpuCount)
        guard UInt64(tables.bytes.count) <= Layout.acpiTablesLimitBytes else {
            throw ConfigurationError.tablesDoNotFit(what: "the ACPI tables", bytes: tables.bytes.count, limit: Layout.acpiTablesLimitBytes)
        }
        try memory.write(tables.bytes, at: GuestAddress(tables.baseAddress))
        try BootRegisters.writeGDT(into: memory)
        var commandLine = configuration.commandLine
        if configuration.addHostKernelOptions {
            (commandLine, addedKernelOptions) = HostKernelOptions.merge(HostKernelOptions.options(tscKHz: vm.tscKHz()), into: commandLine)
        }
        self.commandLine = commandLine
        let entry = try BootLoader(memory: memory, ramLayout: ramLayout)
            .load(kernel: kernel, commandLine: commandLine, initrd: initrd, rsdpAddress: tables.rsdpAddress)

        let setup = CPUSetup(supportedCPUID: try kvm.supportedCPUID(), cpuCount: configuration.cpuCount)
        try memory.write(setup.mpTable().bytes(at: UInt32(Layout.mpTableAddress)), at: GuestAddress(Layout.mpTableAddress))
        try memory.write(ResetVector.code(resetPort: Layout.acpiPowerPort + UInt16(ACPIPowerDevice.Register.reset)),
                         at: GuestAddress(ResetVector.address))
        var vcpus: [VCPU] = []
        for id in 0..<UInt32(configuration.cpuCount) {
            let vcpu = try vm.createVCPU(id: id)
            try setup.configure(vcpu)
            vcpus.append(vcpu)
        }
        // Only the boot vCPU gets entry registers: the others wait for INIT/SIPI from the guest,
        // which the in-kernel local APIC delivers.
        try BootRegisters.apply(entry, to: vcpus[0])
        self.vcpus = vcpus
        vcpuStatistics = vcpus.map { try? $0.statistics() }
        requests.attach(self)
        if let settings = configuration.idleReclaim, let balloon = configuration.balloon {
            reclaimer = IdleReclaimer(machine: self, settings: settings, userTargetBytes: balloon.targetBytes)
        }
    }

    var isStopping: Bool { stopping.load(ordering: .acquiring) }

    /// How many times Ebb turned an unemulatable `int3` into a #BP for the guest.
    public var breakpointsInjectedCount: UInt64 { breakpointsInjected.load(ordering: .relaxed) }
    func countBreakpointInjected() { breakpointsInjected.add(1, ordering: .relaxed) }

    /// Port and MMIO accesses that no device claimed (ignored, as on real hardware).
    public var unclaimedAccesses: (io: UInt64, mmio: UInt64) { (ioBus.unclaimedAccesses, mmioBus.unclaimedAccesses) }

    /// The first request wins; every vCPU is kicked out of `KVM_RUN` so its thread can end.
    public func requestStop(_ exit: MachineExit) {
        let first = exitState.withLock { state -> Bool in
            guard state == nil else { return false }
            state = exit
            return true
        }
        guard first else { return }
        stopping.store(true, ordering: .releasing)
        kickVCPUs()
    }

    /// Firecracker's SendCtrlAltDel: Ctrl+Alt+Del typed on the i8042 keyboard.
    public func sendCtrlAltDel() {
        keyboard.sendCtrlAltDel()
        report("SendCtrlAltDel: Ctrl+Alt+Del typed on the i8042 keyboard")
    }

    /// Every vCPU out of `KVM_RUN` (or straight out at its next entry).
    func kickVCPUs() {
        for vcpu in vcpus { vcpu.requestExit() }
        threads.withLock { $0.forEach { $0.signal(VCPUKick.signal) } }
    }

    /// Runs the guest until it powers off, resets, crashes, or Ebb is told to stop; the console is
    /// attached for the duration.
    public func run(attachConsole: Bool = true) throws -> MachineExit {
        VCPUKick.install()
        let signals = try HostSignalWatcher { [weak self] number in self?.requestStop(.hostSignal(number)) }
        defer { signals.stop() }
        let console = Console(serial: serial, onQuit: { [weak self] in self?.requestStop(.userQuit) })
        if attachConsole { try console.start() }
        defer { if attachConsole { console.stop() } }
        for device in virtioDevices { try device.eventLoop.start(name: "ebb-virtio\(device.slot.index)") }
        defer { virtioDevices.forEach { $0.eventLoop.stop() } }
        try reclaimer?.start()
        defer { reclaimer?.stop() }
        try timers.start()
        defer { timers.stop() }

        // A register write runs device code on the vCPU that made it (DRIVER_OK, a reset, a
        // QueueNotify that missed its ioeventfd), so a vCPU may make every device's calls.
        let deviceCalls = virtioDevices.flatMap(\.transport.hostSystemCalls)
        for vcpu in vcpus {
            let runner = VCPURunner(vcpu: vcpu, machine: self)
            let thread = try OSThread(name: "ebb-vcpu\(vcpu.id)", role: .vcpu(vcpu.id)) {
                VCPUKick.unblockOnThisThread()
                Sandbox.confineThisThread(as: .vcpu(vcpu.id), deviceCalls: deviceCalls)
                runner.loop()
            }
            threads.withLock { $0.append(thread) }
            // A stop that raced with this thread's creation must still reach it.
            if isStopping { vcpu.requestExit(); thread.signal(VCPUKick.signal) }
        }
        // Every thread exists now; from here the main thread only waits, then cleans up.
        Sandbox.confineThisThread(as: .main)
        for thread in threads.withLock({ $0 }) { thread.join() }
        return exitState.withLock { $0 } ?? .vcpuFault(vcpu: 0, reason: "all vCPUs ended without a reason")
    }
}

/// Hands device requests (power-off, reset) to the machine once it exists.
private final class SystemRequestRelay: @unchecked Sendable {
    private let target = Mutex<Machine?>(nil)
    func attach(_ machine: Machine) { target.withLock { $0 = machine } }
    func forward(_ request: SystemRequest) {
        let machine = target.withLock { $0 }
        switch request {
        case .powerOff: machine?.requestStop(.powerOff)
        case .reset: machine?.requestStop(.reset)
        }
    }
}
