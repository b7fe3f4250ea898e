import Devices
import GuestMemory
import Synchronization

/// The virtio-mmio transport, register layout version 2 (virtio 1.2, 4.2): feature negotiation
/// with VIRTIO_F_VERSION_1 required, the status state machine, queue set-up, interrupt status and
/// acknowledgement, and config space with a generation counter.
///
/// A malformed queue or request puts the device in DEVICE_NEEDS_RESET and raises a config
/// interrupt; the device then does nothing until the driver resets it (status 0).
public final class VirtioMMIOTransport: BusDevice {
    struct State {
        var status: UInt32 = 0
        var deviceFeaturesSelect: UInt32 = 0
        var driverFeaturesSelect: UInt32 = 0
        var driverFeatures: UInt64 = 0
        var queueSelect: UInt32 = 0
        var queueConfigurations: [QueueConfiguration]
        var queues: [SplitQueue?]
        var configGeneration: UInt32 = 0
        var brokenReason: String?
        var notificationsBeforeDriverOK: UInt64 = 0

        var isLive: Bool { status & VirtioStatus.driverOK != 0 && status & VirtioStatus.deviceNeedsReset == 0 }

        /// A device as reset leaves it: `count` queues of `size` entries, none ready.
        init(queueCount count: Int, queueSize size: UInt16) {
            queueConfigurations = Array(repeating: QueueConfiguration(size: size), count: count)
            queues = Array(repeating: nil, count: count)
        }
    }

    public let device: any VirtioDevice
    private let memory: GuestMemory
    private let interrupt: @Sendable () -> Void
    private let onBroken: @Sendable (String) -> Void
    private let onDriverReady: @Sendable (UInt64) -> Void
    private let state: Mutex<State>
    /// InterruptStatus lives outside the lock: a driver polls it while the device works on a queue
    /// (discarding reported memory can take milliseconds), and its vCPU must not wait for that.
    private let interruptStatus = Atomic<UInt32>(0)

    /// `interrupt` raises the device's interrupt line; `onBroken` reports a device the guest broke;
    /// `onDriverReady` tells of each DRIVER_OK, with the negotiated features.
    public init(device: any VirtioDevice, memory: GuestMemory, interrupt: @escaping @Sendable () -> Void,
                onBroken: @escaping @Sendable (String) -> Void, onDriverReady: @escaping @Sendable (UInt64) -> Void = { _ in }) {
        self.device = device
        self.memory = memory
        self.interrupt = interrupt
        self.onBroken = onBroken
        self.onDriverReady = onDriverReady
        state = Mutex(State(queueCount: device.queueCount(features: device.offeredFeatures), queueSize: device.maximumQueueSize))
    }

    /// Why the device is in DEVICE_NEEDS_RESET, if it is.
    public var brokenReason: String? { state.withLock { $0.brokenReason } }
    public var status: UInt32 { state.withLock { $0.status } }
    public var notificationsBeforeDriverOK: UInt64 { state.withLock { $0.notificationsBeforeDriverOK } }

    // MARK: Register access (vCPU threads)

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        if offset >= VirtioMMIORegister.config {
            state.withLock { _ in device.readConfig(offset: offset - VirtioMMIORegister.config, data: data) }
            return
        }
        // Registers are 32-bit; other widths read as zero (virtio 1.2, 4.2.2.2).
        guard data.count == 4 else { data.storeLittleEndian(0); return }
        if offset == VirtioMMIORegister.interruptStatus {
            data.storeLittleEndian(UInt64(interruptStatus.load(ordering: .acquiring)))
            return
        }
        let value: UInt32 = state.withLock { state in
            switch offset {
            case VirtioMMIORegister.magicValue: return VirtioMMIORegister.magic
            case VirtioMMIORegister.version: return VirtioMMIORegister.layoutVersion
            case VirtioMMIORegister.deviceID: return device.deviceID
            case VirtioMMIORegister.vendorID: return 0x0045_4242 // "BBE"
            case VirtioMMIORegister.deviceFeatures:
                return state.deviceFeaturesSelect < 2 ? UInt32(truncatingIfNeeded: device.offeredFeatures >> (32 * UInt64(state.deviceFeaturesSelect))) : 0
            case VirtioMMIORegister.queueSizeMax:
                return Int(state.queueSelect) < state.queueConfigurations.count ? UInt32(device.maximumQueueSize) : 0
            case VirtioMMIORegister.queueReady:
                return selectedQueue(state).map { $0.ready ? 1 : 0 } ?? 0
            case VirtioMMIORegister.status: return state.status
            case VirtioMMIORegister.configGeneration: return state.configGeneration
            default: return 0
            }
        }
        data.storeLittleEndian(UInt64(value))
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        if offset >= VirtioMMIORegister.config {
            state.withLock { _ in device.writeConfig(offset: offset - VirtioMMIORegister.config, data: data) }
            return
        }
        guard data.count == 4 else { return }
        let value = UInt32(truncatingIfNeeded: data.littleEndianValue)
        if offset == VirtioMMIORegister.queueNotify {
            notify(queue: Int(value))
            return
        }
        var brokenNow: String?
        var becameLive = false
        var features: UInt64 = 0
        state.withLock { state in
            switch offset {
            case VirtioMMIORegister.deviceFeaturesSelect: state.deviceFeaturesSelect = value
            case VirtioMMIORegister.driverFeaturesSelect: state.driverFeaturesSelect = value
            case VirtioMMIORegister.driverFeatures:
                // Features are fixed once FEATURES_OK is set.
                guard state.status & VirtioStatus.featuresOK == 0, state.driverFeaturesSelect < 2 else { break }
                let shift = 32 * UInt64(state.driverFeaturesSelect)
                state.driverFeatures = (state.driverFeatures & ~(0xffff_ffff << shift)) | (UInt64(value) << shift)
            case VirtioMMIORegister.queueSelect: state.queueSelect = value
            case VirtioMMIORegister.queueSize: updateSelectedQueue(&state) { $0.size = UInt16(truncatingIfNeeded: value) }
            case VirtioMMIORegister.queueDescriptorLow: updateSelectedQueue(&state) { $0.descriptorTable.setLow(value) }
            case VirtioMMIORegister.queueDescriptorHigh: updateSelectedQueue(&state) { $0.descriptorTable.setHigh(value) }
            case VirtioMMIORegister.queueDriverLow: updateSelectedQueue(&state) { $0.availRing.setLow(value) }
            case VirtioMMIORegister.queueDriverHigh: updateSelectedQueue(&state) { $0.availRing.setHigh(value) }
            case VirtioMMIORegister.queueDeviceLow: updateSelectedQueue(&state) { $0.usedRing.setLow(value) }
            case VirtioMMIORegister.queueDeviceHigh: updateSelectedQueue(&state) { $0.usedRing.setHigh(value) }
            case VirtioMMIORegister.queueReady:
                brokenNow = setSelectedQueueReady(&state, value == 1)
            case VirtioMMIORegister.interruptACK:
                interruptStatus.bitwiseAnd(~value, ordering: .acquiringAndReleasing)
            case VirtioMMIORegister.status:
                let wasLive = state.isLive
                brokenNow = writeStatus(&state, value)
                becameLive = !wasLive && state.isLive
                features = state.driverFeatures
            default:
                break
            }
        }
        if let brokenNow { reportBroken(brokenNow) }
        // Linux kicks its stats queue before DRIVER_OK (virtio_balloon's init_vqs); a kick that came
        // too early was ignored, so look at every queue once the device goes live.
        if becameLive {
            onDriverReady(features)
            for queue in 0..<state.withLock({ $0.queues.count }) { notify(queue: queue) }
        }
    }

    // MARK: Queue work (the device's event thread, or a vCPU thread without ioeventfd)

    /// The driver notified queue `index`: process what it made available.
    public func notify(queue index: Int) {
        let early = state.withLock { state -> Bool in
            guard state.status & VirtioStatus.driverOK == 0 else { return false }
            state.notificationsBeforeDriverOK += 1
            return true
        }
        guard !early else { return }
        performQueueWork { state throws(QueueError) -> Bool in
            guard index >= 0, index < state.queues.count, var queue = state.queues[index] else { return false }
            let used = try device.process(queueIndex: index, queue: &queue, memory: memory)
            state.queues[index] = queue
            return used && queue.wantsInterrupt(memory: memory)
        }
    }

    /// Runs the device's timers.
    public func tick() {
        performQueueWork { state throws(QueueError) -> Bool in
            try device.tick(queues: &state.queues, memory: memory)
        }
    }

    /// Runs queue work on a live device under the lock: a `true` result raises the used-buffer
    /// interrupt; a `QueueError` marks the device DEVICE_NEEDS_RESET and reports it.
    private func performQueueWork(_ work: (inout State) throws(QueueError) -> Bool) {
        let outcome = state.withLock { state -> (interrupt: Bool, broken: String?) in
            guard state.isLive else { return (false, nil) }
            do {
                guard try work(&state) else { return (false, nil) }
                interruptStatus.bitwiseOr(VirtioInterrupt.usedBuffer, ordering: .acquiringAndReleasing)
                return (true, nil)
            } catch {
                return (false, markNeedsReset(&state, "\(error)"))
            }
        }
        if outcome.interrupt { interrupt() }
        if let broken = outcome.broken { reportBroken(broken) }
    }

    /// The device changed its config space (e.g. a new balloon target): tell the driver.
    public func configChanged(_ change: () -> Void) {
        let raise = state.withLock { state -> Bool in
            change()
            state.configGeneration &+= 1
            guard state.status & VirtioStatus.driverOK != 0 else { return false }
            interruptStatus.bitwiseOr(VirtioInterrupt.configChange, ordering: .acquiringAndReleasing)
            return true
        }
        if raise { interrupt() }
    }

    /// Runs `body` with the device while no register access or queue work is under way.
    public func withDevice<R>(_ body: () -> R) -> R { state.withLock { _ in body() } }

    // MARK: State machine

    private func selectedQueue(_ state: State) -> QueueConfiguration? {
        Int(state.queueSelect) < state.queueConfigurations.count ? state.queueConfigurations[Int(state.queueSelect)] : nil
    }

    /// Queue registers may change only while the queue is not ready (virtio 1.2, 4.2.3.2).
    private func updateSelectedQueue(_ state: inout State, _ change: (inout QueueConfiguration) -> Void) {
        let index = Int(state.queueSelect)
        guard index < state.queueConfigurations.count, !state.queueConfigurations[index].ready else { return }
        change(&state.queueConfigurations[index])
    }

    private func setSelectedQueueReady(_ state: inout State, _ ready: Bool) -> String? {
        let index = Int(state.queueSelect)
        guard index < state.queueConfigurations.count else { return nil }
        guard ready else {
            state.queueConfigurations[index].ready = false
            state.queues[index] = nil
            return nil
        }
        do {
            state.queues[index] = try SplitQueue(state.queueConfigurations[index], maximumSize: device.maximumQueueSize, memory: memory)
            state.queueConfigurations[index].ready = true
            return nil
        } catch {
            return markNeedsReset(&state, "queue \(index): \(error)")
        }
    }

    private func writeStatus(_ state: inout State, _ value: UInt32) -> String? {
        if value == 0 {
            resetLocked(&state)
            return nil
        }
        var accepted = value & ~VirtioStatus.deviceNeedsReset
        let newlySet = accepted & ~state.status
        if newlySet & VirtioStatus.featuresOK != 0 {
            // Only offered features, and always VERSION_1: otherwise FEATURES_OK does not stick.
            let features = state.driverFeatures
            if features & ~device.offeredFeatures != 0 || features & VirtioFeature.version1 == 0 {
                accepted &= ~VirtioStatus.featuresOK
            } else {
                resizeQueues(&state, count: device.queueCount(features: features))
            }
        }
        state.status = accepted | (state.status & VirtioStatus.deviceNeedsReset)
        if newlySet & VirtioStatus.driverOK != 0 {
            guard accepted & VirtioStatus.featuresOK != 0 else {
                return markNeedsReset(&state, "DRIVER_OK without FEATURES_OK")
            }
            device.activate(features: state.driverFeatures)
        }
        return nil
    }

    private func resizeQueues(_ state: inout State, count: Int) {
        let current = state.queueConfigurations.count
        if count < current {
            state.queueConfigurations.removeLast(current - count)
            state.queues.removeLast(current - count)
        } else if count > current {
            let added = State(queueCount: count - current, queueSize: device.maximumQueueSize)
            state.queueConfigurations += added.queueConfigurations
            state.queues += added.queues
        }
    }

    private func resetLocked(_ state: inout State) {
        device.reset()
        interruptStatus.store(0, ordering: .releasing)
        let (earlyNotifications, generation) = (state.notificationsBeforeDriverOK, state.configGeneration)
        defer { (state.notificationsBeforeDriverOK, state.configGeneration) = (earlyNotifications, generation) }
        state = State(queueCount: device.queueCount(features: device.offeredFeatures), queueSize: device.maximumQueueSize)
    }

    private func markNeedsReset(_ state: inout State, _ reason: String) -> String {
        state.status |= VirtioStatus.deviceNeedsReset
        interruptStatus.bitwiseOr(VirtioInterrupt.configChange, ordering: .acquiringAndReleasing)
        state.brokenReason = reason
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
