import ByteOrder
import Devices
import GuestMemory
import Seccomp
import Synchronization

/// The virtio-mmio transport, register layout version 2 (virtio 1.2, 4.2): feature negotiation
/// with VIRTIO_F_VERSION_1 required, the status state machine, queue set-up, interrupt status and
/// acknowledgement, and config space with a generation counter.
///
/// Two locks, always taken in this order: `registers` (what the driver programs; vCPU threads) and
/// `work` (the device itself and its live queues). Queue work holds only `work`, so a slow request
/// never stalls a vCPU reading or writing the transport's registers; InterruptStatus and
/// DEVICE_NEEDS_RESET are atomics that either side may set. The device is owned here: nothing
/// outside reaches it but through `withDevice`, under `work`, which the compiler checks.
///
/// A malformed queue puts the device in DEVICE_NEEDS_RESET and raises a config interrupt; the
/// device then does nothing until the driver resets it (status 0).
public final class VirtioMMIOTransport: BusDevice {
    /// What the driver programs through the registers.
    struct Registers {
        var status: UInt32 = 0
        var deviceFeaturesSelect: UInt32 = 0
        var driverFeaturesSelect: UInt32 = 0
        var driverFeatures: UInt64 = 0
        var queueSelect: UInt32 = 0
        var queueConfigurations: [QueueConfiguration]
        var queueMaximumSizes: [UInt16]
        var configGeneration: UInt32 = 0

        /// As reset leaves it: a queue of each maximum size, none ready.
        init(queueMaximumSizes sizes: [UInt16]) {
            queueMaximumSizes = sizes
            queueConfigurations = sizes.map { QueueConfiguration(size: $0) }
        }
    }

    /// The device and the queues the driver made ready.
    struct Work {
        var device: any VirtioDevice
        var queues: [SplitQueue?]
        var driverOK = false
        var brokenReason: String?
        var notificationsBeforeDriverOK: UInt64 = 0

        var isLive: Bool { driverOK && brokenReason == nil }

        /// The maximum size of each queue the device has with `features`.
        func queueMaximumSizes(features: UInt64) -> [UInt16] { Self.queueMaximumSizes(of: device, features: features) }

        static func queueMaximumSizes(of device: any VirtioDevice, features: UInt64) -> [UInt16] {
            (0..<device.queueCount(features: features)).map { device.maximumQueueSize(queue: $0) }
        }
    }

    public let name: String
    public let deviceID: UInt32
    public let offeredFeatures: UInt64
    /// How often the device wants `tick`; nil: never.
    public let tickInterval: Duration?
    /// The device's host file descriptors (see `VirtioDevice.hostEventSources`).
    public let hostEventSources: [Int32]
    /// The device's part of its thread's seccomp filter (see `VirtioDevice.hostSystemCalls`).
    public let hostSystemCalls: [SyscallRule]
    /// The queues whose notifications a vCPU serves (see `VirtioDevice.servesOnVCPU`).
    public let queuesServedOnVCPU: Set<Int>
    private let memory: GuestMemory
    private let interrupt: @Sendable () -> Void
    private let onBroken: @Sendable (String) -> Void
    private let onDriverReady: @Sendable (UInt64) -> Void
    private let registers: Mutex<Registers>
    private let work: Mutex<Work>
    /// InterruptStatus lives outside the locks: a driver polls it while the device works on a queue
    /// (discarding reported memory can take milliseconds), and its vCPU must not wait for that.
    private let interruptStatus = Atomic<UInt32>(0)
    /// DEVICE_NEEDS_RESET: set by queue work (which may not take `registers`), cleared by a reset.
    private let needsReset = Atomic<Bool>(false)

    /// `interrupt` raises the device's interrupt line; `onBroken` reports a device the guest broke;
    /// `onDriverReady` tells of each DRIVER_OK, with the negotiated features.
    public init(device: sending any VirtioDevice, memory: GuestMemory, interrupt: @escaping @Sendable () -> Void,
                onBroken: @escaping @Sendable (String) -> Void, onDriverReady: @escaping @Sendable (UInt64) -> Void = { _ in }) {
        name = device.name
        deviceID = device.deviceID
        offeredFeatures = device.offeredFeatures | VirtioFeature.ringEventIndex | VirtioFeature.indirectDescriptors
        tickInterval = device.tickInterval
        hostEventSources = device.hostEventSources
        hostSystemCalls = device.hostSystemCalls
        let sizes = Work.queueMaximumSizes(of: device, features: device.offeredFeatures)
        queuesServedOnVCPU = Set(sizes.indices.filter { device.servesOnVCPU(queue: $0) })
        registers = Mutex(Registers(queueMaximumSizes: sizes))
        work = Mutex(Work(device: device, queues: Array(repeating: nil, count: sizes.count)))
        self.memory = memory
        self.interrupt = interrupt
        self.onBroken = onBroken
        self.onDriverReady = onDriverReady
    }

    /// Why the device is in DEVICE_NEEDS_RESET, if it is.
    public var brokenReason: String? { work.withLock { $0.brokenReason } }
    public var status: UInt32 { registers.withLock { $0.status } | (needsReset.load(ordering: .acquiring) ? VirtioStatus.deviceNeedsReset : 0) }
    public var notificationsBeforeDriverOK: UInt64 { work.withLock { $0.notificationsBeforeDriverOK } }

    /// Runs `body` with the device, if it is a `D`, while no queue work is under way.
    public func withDevice<D: VirtioDevice, R: Sendable>(_ type: D.Type, _ body: @Sendable (D) -> R) -> R? {
        work.withLock { work in (work.device as? D).map(body) }
    }

    /// The device changes its config space (e.g. a new balloon target): the driver hears of it by a
    /// config interrupt once it is up. Returns false if the device is not a `D`.
    @discardableResult
    public func configChanged<D: VirtioDevice>(_ type: D.Type, _ change: @Sendable (D) -> Void) -> Bool {
        let (changed, raise) = registers.withLock { registers -> (Bool, Bool) in
            let changed = work.withLock { work -> Bool in
                guard let device = work.device as? D else { return false }
                change(device)
                return true
            }
            guard changed else { return (false, false) }
            registers.configGeneration &+= 1
            guard registers.status & VirtioStatus.driverOK != 0 else { return (true, false) }
            interruptStatus.bitwiseOr(VirtioInterrupt.configChange, ordering: .acquiringAndReleasing)
            return (true, true)
        }
        if raise { interrupt() }
        return changed
    }

    // MARK: Register access (vCPU threads)

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        if offset >= VirtioMMIORegister.config {
            let count = data.count
            let bytes = work.withLock { $0.device.readConfig(offset: offset - VirtioMMIORegister.config, count: count) }
            for index in data.indices { data[index] = index < bytes.count ? bytes[index] : 0 }
            return
        }
        // Registers are 32-bit; other widths read as zero (virtio 1.2, 4.2.2.2).
        guard data.count == 4 else { data.storeLittleEndian(0); return }
        let value: UInt32
        switch offset {
        case VirtioMMIORegister.interruptStatus: value = interruptStatus.load(ordering: .acquiring)
        case VirtioMMIORegister.magicValue: value = VirtioMMIORegister.magic
        case VirtioMMIORegister.version: value = VirtioMMIORegister.layoutVersion
        case VirtioMMIORegister.deviceID: value = deviceID
        case VirtioMMIORegister.vendorID: value = VirtioMMIORegister.vendor
        case VirtioMMIORegister.status: value = status
        default:
            value = registers.withLock { registers in
                switch offset {
                case VirtioMMIORegister.deviceFeatures:
                    return registers.deviceFeaturesSelect < 2 ? UInt32(truncatingIfNeeded: offeredFeatures >> (32 * UInt64(registers.deviceFeaturesSelect))) : 0
                case VirtioMMIORegister.queueSizeMax:
                    let index = Int(registers.queueSelect)
                    return index < registers.queueMaximumSizes.count ? UInt32(registers.queueMaximumSizes[index]) : 0
                case VirtioMMIORegister.queueReady:
                    return selectedQueue(registers).map { $0.ready ? 1 : 0 } ?? 0
                case VirtioMMIORegister.configGeneration: return registers.configGeneration
                default: return 0
                }
            }
        }
        data.storeLittleEndian(UInt64(value))
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        if offset >= VirtioMMIORegister.config {
            let bytes = Array(data)
            work.withLock { $0.device.writeConfig(offset: offset - VirtioMMIORegister.config, bytes: bytes, memory: memory) }
            return
        }
        guard data.count == 4 else { return }
        let value = UInt32(truncatingIfNeeded: data.littleEndianValue)
        switch offset {
        case VirtioMMIORegister.queueNotify:
            notify(queue: Int(value))
            return
        case VirtioMMIORegister.interruptACK:
            interruptStatus.bitwiseAnd(~value, ordering: .acquiringAndReleasing)
            return
        default:
            break
        }
        var brokenNow: String?
        var liveWithFeatures: UInt64?
        var queueCount = 0
        registers.withLock { registers in
            switch offset {
            case VirtioMMIORegister.deviceFeaturesSelect: registers.deviceFeaturesSelect = value
            case VirtioMMIORegister.driverFeaturesSelect: registers.driverFeaturesSelect = value
            case VirtioMMIORegister.driverFeatures:
                // Features are fixed once FEATURES_OK is set.
                guard registers.status & VirtioStatus.featuresOK == 0, registers.driverFeaturesSelect < 2 else { break }
                let shift = 32 * UInt64(registers.driverFeaturesSelect)
                registers.driverFeatures = (registers.driverFeatures & ~(0xffff_ffff << shift)) | (UInt64(value) << shift)
            case VirtioMMIORegister.queueSelect: registers.queueSelect = value
            case VirtioMMIORegister.queueSize: updateSelectedQueue(&registers) { $0.size = UInt16(truncatingIfNeeded: value) }
            case VirtioMMIORegister.queueDescriptorLow: updateSelectedQueue(&registers) { $0.descriptorTable.setLow(value) }
            case VirtioMMIORegister.queueDescriptorHigh: updateSelectedQueue(&registers) { $0.descriptorTable.setHigh(value) }
            case VirtioMMIORegister.queueDriverLow: updateSelectedQueue(&registers) { $0.availRing.setLow(value) }
            case VirtioMMIORegister.queueDriverHigh: updateSelectedQueue(&registers) { $0.availRing.setHigh(value) }
            case VirtioMMIORegister.queueDeviceLow: updateSelectedQueue(&registers) { $0.usedRing.setLow(value) }
            case VirtioMMIORegister.queueDeviceHigh: updateSelectedQueue(&registers) { $0.usedRing.setHigh(value) }
            case VirtioMMIORegister.queueReady:
                brokenNow = setSelectedQueueReady(&registers, value == 1)
            case VirtioMMIORegister.status:
                let outcome = writeStatus(&registers, value)
                brokenNow = outcome.broken
                if outcome.becameLive { liveWithFeatures = registers.driverFeatures }
                queueCount = registers.queueConfigurations.count
            default:
                break
            }
        }
        if let brokenNow { reportBroken(brokenNow) }
        // Linux kicks its stats queue before DRIVER_OK (virtio_balloon's init_vqs); a kick that came
        // too early was ignored, so look at every queue once the device goes live.
        if let features = liveWithFeatures {
            onDriverReady(features)
            for queue in 0..<queueCount { notify(queue: queue) }
        }
    }

    // MARK: Queue work (the device's event thread, or a vCPU thread without ioeventfd)

    /// The driver notified queue `index`: process what it made available. With
    /// `holdingInterrupt` the used-buffer interrupt it is due is not raised but returned, for the
    /// caller's `raiseHeldInterrupt` (the event thread's: one interrupt for a batch of events).
    @discardableResult
    public func notify(queue index: Int, holdingInterrupt: Bool = false) -> Bool {
        performQueueWork(holdingInterrupt: holdingInterrupt) { work throws(QueueError) -> Bool in
            guard work.driverOK else {
                work.notificationsBeforeDriverOK += 1
                return false
            }
            guard work.isLive, index >= 0, index < work.queues.count, var queue = work.queues[index] else { return false }
            let used = try work.device.process(queueIndex: index, queue: &queue, memory: memory)
            let wanted = used && queue.wantsInterrupt(memory: memory)
            work.queues[index] = queue
            return wanted
        }
    }

    /// Runs the device's timed work (`holdingInterrupt` as for `notify`).
    @discardableResult
    public func tick(holdingInterrupt: Bool = false) -> Bool {
        performQueueWork(holdingInterrupt: holdingInterrupt) { work throws(QueueError) -> Bool in
            guard work.isLive else { return false }
            return try work.device.tick(queues: &work.queues, memory: memory)
        }
    }

    /// One of the device's host file descriptors became readable. The interrupt is due when any
    /// queue the device used wants one (a NIC's receive queue, in practice); `holdingInterrupt`
    /// as for `notify`.
    @discardableResult
    public func hostEvent(source index: Int, holdingInterrupt: Bool = false) -> Bool {
        performQueueWork(holdingInterrupt: holdingInterrupt) { work throws(QueueError) -> Bool in
            guard work.isLive else { return false }
            guard try work.device.hostEvent(source: index, queues: &work.queues, memory: memory) else { return false }
            // Every queue is asked (a queue with nothing new used never wants one).
            var wanted = false
            for queueIndex in work.queues.indices {
                guard var queue = work.queues[queueIndex] else { continue }
                if queue.wantsInterrupt(memory: memory) { wanted = true }
                work.queues[queueIndex] = queue
            }
            return wanted
        }
    }

    /// Raises the used-buffer interrupt that work run with `holdingInterrupt` returned as due
    /// (its InterruptStatus bit is already set).
    public func raiseHeldInterrupt() { interrupt() }

    /// Runs queue work under `work` only: a `true` result sets the used-buffer interrupt's status
    /// bit and raises the interrupt, or, `holdingInterrupt`, returns true for the caller to raise
    /// it; a `QueueError` marks the device DEVICE_NEEDS_RESET and reports it.
    private func performQueueWork(holdingInterrupt: Bool, _ body: (inout Work) throws(QueueError) -> Bool) -> Bool {
        let outcome = work.withLock { work -> (interrupt: Bool, broken: String?) in
            do {
                guard try body(&work) else { return (false, nil) }
                interruptStatus.bitwiseOr(VirtioInterrupt.usedBuffer, ordering: .acquiringAndReleasing)
                return (true, nil)
            } catch {
                return (false, markNeedsReset(&work, "\(error)"))
            }
        }
        if outcome.interrupt && !holdingInterrupt { interrupt() }
        if let broken = outcome.broken { reportBroken(broken) }
        return outcome.interrupt && holdingInterrupt
    }

    // MARK: State machine (under `registers`; `work` is taken inside where the device is involved)

    private func selectedQueue(_ registers: Registers) -> QueueConfiguration? {
        Int(registers.queueSelect) < registers.queueConfigurations.count ? registers.queueConfigurations[Int(registers.queueSelect)] : nil
    }

    /// Queue registers may change only while the queue is not ready (virtio 1.2, 4.2.3.2).
    private func updateSelectedQueue(_ registers: inout Registers, _ change: (inout QueueConfiguration) -> Void) {
        let index = Int(registers.queueSelect)
        guard index < registers.queueConfigurations.count, !registers.queueConfigurations[index].ready else { return }
        change(&registers.queueConfigurations[index])
    }

    private func setSelectedQueueReady(_ registers: inout Registers, _ ready: Bool) -> String? {
        let index = Int(registers.queueSelect)
        guard index < registers.queueConfigurations.count else { return nil }
        guard ready else {
            registers.queueConfigurations[index].ready = false
            work.withLock { if index < $0.queues.count { $0.queues[index] = nil } }
            return nil
        }
        let configuration = registers.queueConfigurations[index]
        let maximum = registers.queueMaximumSizes[index]
        return work.withLock { work -> String? in
            do {
                let eventIndex = registers.driverFeatures & VirtioFeature.ringEventIndex != 0
                let indirect = registers.driverFeatures & VirtioFeature.indirectDescriptors != 0
                let queue = try SplitQueue(configuration, maximumSize: maximum, memory: memory, eventIndex: eventIndex,
                                           indirectDescriptors: indirect)
                guard index < work.queues.count else { return nil }
                work.queues[index] = queue
                registers.queueConfigurations[index].ready = true
                return nil
            } catch {
                return markNeedsReset(&work, "queue \(index): \(error)")
            }
        }
    }

    private func writeStatus(_ registers: inout Registers, _ value: UInt32) -> (broken: String?, becameLive: Bool) {
        if value == 0 {
            reset(&registers)
            return (nil, false)
        }
        var accepted = value & ~VirtioStatus.deviceNeedsReset
        let newlySet = accepted & ~registers.status
        if newlySet & VirtioStatus.featuresOK != 0 {
            // Only offered features, and always VERSION_1: otherwise FEATURES_OK does not stick.
            let features = registers.driverFeatures
            if features & ~offeredFeatures != 0 || features & VirtioFeature.version1 == 0 {
                accepted &= ~VirtioStatus.featuresOK
            } else {
                resizeQueues(&registers, features: features)
            }
        }
        registers.status = accepted
        guard newlySet & VirtioStatus.driverOK != 0 else { return (nil, false) }
        let features = registers.driverFeatures
        return work.withLock { work in
            guard accepted & VirtioStatus.featuresOK != 0 else {
                return (markNeedsReset(&work, "DRIVER_OK without FEATURES_OK"), false)
            }
            work.device.activate(features: features)
            work.driverOK = true
            return (nil, work.isLive)
        }
    }

    /// The negotiated features decide how many queues there are.
    private func resizeQueues(_ registers: inout Registers, features: UInt64) {
        let sizes = work.withLock { work -> [UInt16] in
            let sizes = work.queueMaximumSizes(features: features)
            work.queues = (0..<sizes.count).map { $0 < work.queues.count ? work.queues[$0] : nil }
            return sizes
        }
        let kept = min(sizes.count, registers.queueConfigurations.count)
        registers.queueConfigurations = Array(registers.queueConfigurations[0..<kept])
            + sizes[kept...].map { QueueConfiguration(size: $0) }
        registers.queueMaximumSizes = sizes
    }

    private func reset(_ registers: inout Registers) {
        let sizes = work.withLock { work -> [UInt16] in
            work.device.reset()
            let sizes = work.queueMaximumSizes(features: offeredFeatures)
            work.queues = Array(repeating: nil, count: sizes.count)
            work.driverOK = false
            work.brokenReason = nil
            return sizes
        }
        needsReset.store(false, ordering: .releasing)
        interruptStatus.store(0, ordering: .releasing)
        let generation = registers.configGeneration
        registers = Registers(queueMaximumSizes: sizes)
        registers.configGeneration = generation
    }

    /// Called with `work` held: the device stops until the driver resets it.
    private func markNeedsReset(_ work: inout Work, _ reason: String) -> String {
        work.brokenReason = reason
        needsReset.store(true, ordering: .releasing)
        interruptStatus.bitwiseOr(VirtioInterrupt.configChange, ordering: .acquiringAndReleasing)
        return reason
    }

    private func reportBroken(_ reason: String) {
        interrupt()
        onBroken(reason)
    }
}

extension UInt64 {
    mutating func setLow(_ value: UInt32) { self = (self & 0xffff_ffff_0000_0000) | UInt64(value) }
    mutating func setHigh(_ value: UInt32) { self = (self & 0xffff_ffff) | (UInt64(value) << 32) }
}
