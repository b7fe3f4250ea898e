import Devices
import GuestMemory
import Synchronization
import Testing
@testable import Virtio

final class Events: Sendable {
    private let state = Mutex<(interrupts: Int, broken: [String])>((0, []))
    var interrupts: Int { state.withLock { $0.interrupts } }
    var broken: [String] { state.withLock { $0.broken } }
    func interrupt() { state.withLock { $0.interrupts += 1 } }
    func broke(_ reason: String) { state.withLock { $0.broken.append(reason) } }
}

extension VirtioMMIOTransport {
    func read32(_ offset: UInt64) -> UInt32 {
        var value: UInt32 = 0
        withUnsafeMutableBytes(of: &value) { read(offset: offset, data: $0) }
        return value
    }

    func write32(_ offset: UInt64, _ value: UInt32) {
        withUnsafeBytes(of: value) { write(offset: offset, data: $0) }
    }
}

/// A balloon behind its transport, driven through registers as Linux's virtio_mmio does.
struct BalloonFixture {
    let memory: GuestMemory
    let transport: VirtioMMIOTransport
    let events = Events()

    init(options: BalloonDevice.Options = .init(), megabytes: UInt64 = 64, hugePages: Bool = false) throws {
        memory = try makeMemory(megabytes: megabytes, hugePages: hugePages)
        let events = self.events
        transport = VirtioMMIOTransport(device: BalloonDevice(options: options), memory: memory, interrupt: { events.interrupt() }, onBroken: { events.broke($0) })
    }

    /// ACK, DRIVER, features, FEATURES_OK; returns whether FEATURES_OK stuck.
    func negotiate(_ features: UInt64) -> Bool {
        transport.write32(VirtioMMIORegister.status, 0)
        transport.write32(VirtioMMIORegister.status, VirtioStatus.acknowledge)
        transport.write32(VirtioMMIORegister.status, VirtioStatus.acknowledge | VirtioStatus.driver)
        for select in 0..<2 {
            transport.write32(VirtioMMIORegister.driverFeaturesSelect, UInt32(select))
            transport.write32(VirtioMMIORegister.driverFeatures, UInt32(truncatingIfNeeded: features >> (32 * UInt64(select))))
        }
        transport.write32(VirtioMMIORegister.status, VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK)
        return transport.read32(VirtioMMIORegister.status) & VirtioStatus.featuresOK != 0
    }

    /// Programs queue `index` from a test driver and marks it ready.
    func setUpQueue(_ index: UInt32, _ driver: TestDriver) {
        let configuration = driver.configuration
        transport.write32(VirtioMMIORegister.queueSelect, index)
        transport.write32(VirtioMMIORegister.queueSize, UInt32(configuration.size))
        transport.write32(VirtioMMIORegister.queueDescriptorLow, UInt32(truncatingIfNeeded: configuration.descriptorTable))
        transport.write32(VirtioMMIORegister.queueDescriptorHigh, UInt32(configuration.descriptorTable >> 32))
        transport.write32(VirtioMMIORegister.queueDriverLow, UInt32(truncatingIfNeeded: configuration.availRing))
        transport.write32(VirtioMMIORegister.queueDriverHigh, UInt32(configuration.availRing >> 32))
        transport.write32(VirtioMMIORegister.queueDeviceLow, UInt32(truncatingIfNeeded: configuration.usedRing))
        transport.write32(VirtioMMIORegister.queueDeviceHigh, UInt32(configuration.usedRing >> 32))
        transport.write32(VirtioMMIORegister.queueReady, 1)
    }

    func driverOK() {
        transport.write32(VirtioMMIORegister.status, VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK | VirtioStatus.driverOK)
    }

    /// Free page reporting negotiated and every queue live; the reporting queue's driver
    /// (queue 2 without stats) is returned for the test to fill.
    func liveWithReportingQueue() -> TestDriver {
        #expect(negotiate(reportingFeatures))
        let reporting = TestDriver(memory: memory, size: 32, base: 0x10000)
        setUpQueue(0, TestDriver(memory: memory, size: 32, base: 0x20000))
        setUpQueue(1, TestDriver(memory: memory, size: 32, base: 0x30000))
        setUpQueue(2, reporting)
        driverOK()
        return reporting
    }

    var counters: BalloonCounters { transport.withDevice(BalloonDevice.self) { $0.counters } ?? BalloonCounters() }
    var needsReset: Bool { transport.read32(VirtioMMIORegister.status) & VirtioStatus.deviceNeedsReset != 0 }
}

let reportingFeatures = VirtioFeature.version1 | BalloonFeature.reporting

@Suite struct BalloonTransportTests {
    @Test func identifiesAsAVersion2BalloonOfferingReporting() throws {
        let fixture = try BalloonFixture()
        let transport = fixture.transport
        #expect(transport.read32(VirtioMMIORegister.magicValue) == 0x7472_6976)
        #expect(transport.read32(VirtioMMIORegister.version) == 2)
        #expect(transport.read32(VirtioMMIORegister.deviceID) == 5)
        transport.write32(VirtioMMIORegister.deviceFeaturesSelect, 0)
        let low = transport.read32(VirtioMMIORegister.deviceFeatures)
        transport.write32(VirtioMMIORegister.deviceFeaturesSelect, 1)
        #expect(transport.read32(VirtioMMIORegister.deviceFeatures) == 1) // VERSION_1
        #expect(low & UInt32(BalloonFeature.reporting | BalloonFeature.statsQueue | BalloonFeature.deflateOnOOM) != 0)
        #expect(low & UInt32(BalloonFeature.pagePoison | BalloonFeature.freePageHint) == 0)
    }

    @Test func featuresOKNeedsVersion1AndOnlyOfferedFeatures() throws {
        let fixture = try BalloonFixture(options: .init(freePageReporting: false))
        #expect(!fixture.negotiate(BalloonFeature.statsQueue))
        #expect(!fixture.negotiate(VirtioFeature.version1 | BalloonFeature.reporting))
        #expect(fixture.negotiate(VirtioFeature.version1 | BalloonFeature.statsQueue))
    }

    @Test func reportedRangesAreDiscardedAndReturnedWithOneInterrupt() throws {
        let fixture = try BalloonFixture()
        let memory = fixture.memory
        var reporting = fixture.liveWithReportingQueue()
        try memory.write([UInt8](repeating: 0x5a, count: 4 << 20), at: GuestAddress(8 << 20))
        try reporting.setDescriptor(0, address: 8 << 20, length: 2 << 20, flags: 1 | 2, next: 1)
        try reporting.setDescriptor(1, address: 10 << 20, length: 2 << 20, flags: 2)
        try reporting.makeAvailable(0)
        fixture.transport.notify(queue: 2)
        let counters = fixture.counters
        #expect(counters.reportedRanges == 2)
        #expect(counters.reportedBytes == 4 << 20)
        #expect(counters.discardedBytes == 4 << 20)
        #expect(counters.reportDiscardCalls == 1)   // the two blocks are contiguous
        #expect(counters.firstReportAt != nil)
        #expect(try memory.load(UInt64.self, at: GuestAddress(9 << 20)) == 0)
        #expect(try reporting.usedIndex() == 1)
        #expect(fixture.events.interrupts == 1)
        #expect(fixture.transport.read32(VirtioMMIORegister.interruptStatus) == VirtioInterrupt.usedBuffer)
        fixture.transport.write32(VirtioMMIORegister.interruptACK, VirtioInterrupt.usedBuffer)
        #expect(fixture.transport.read32(VirtioMMIORegister.interruptStatus) == 0)
    }

    /// The event thread's batching: work run holding the interrupt sets the status bit at once
    /// and says the interrupt is due, and nothing is raised until the caller raises it.
    @Test func heldInterruptIsRaisedOnlyWhenTheCallerRaisesIt() throws {
        let fixture = try BalloonFixture()
        var reporting = fixture.liveWithReportingQueue()
        #expect(fixture.transport.notify(queue: 2, holdingInterrupt: true) == false)   // nothing used
        try reporting.setDescriptor(0, address: 8 << 20, length: 2 << 20, flags: 2)
        try reporting.makeAvailable(0)
        #expect(fixture.transport.notify(queue: 2, holdingInterrupt: true))
        #expect(try reporting.usedIndex() == 1)
        #expect(fixture.events.interrupts == 0)
        #expect(fixture.transport.read32(VirtioMMIORegister.interruptStatus) == VirtioInterrupt.usedBuffer)
        fixture.transport.raiseHeldInterrupt()
        #expect(fixture.events.interrupts == 1)
    }

    @Test func onlyContiguousBlocksShareADiscard() throws {
        let fixture = try BalloonFixture()
        let memory = fixture.memory
        #expect(fixture.negotiate(reportingFeatures))
        var reporting = TestDriver(memory: memory, size: 32, base: 0x10000)
        fixture.setUpQueue(2, reporting)
        fixture.driverOK()
        try memory.write([UInt8](repeating: 0x5a, count: 16 << 20), at: GuestAddress(8 << 20))
        // 8-10 and 10-12 MiB touch; 16-18 MiB stands apart; 12-16 MiB is not reported.
        let blocks: [UInt64] = [8 << 20, 10 << 20, 16 << 20]
        for (index, address) in blocks.enumerated() {
            let last = index == blocks.count - 1
            try reporting.setDescriptor(UInt16(index), address: address, length: 2 << 20,
                                        flags: last ? 2 : 1 | 2, next: last ? 0 : UInt16(index + 1))
        }
        try reporting.makeAvailable(0)
        fixture.transport.notify(queue: 2)
        let counters = fixture.counters
        #expect(counters.reportedRanges == 3)
        #expect(counters.reportDiscardCalls == 2)
        #expect(counters.discardedBytes == 6 << 20)
        for address: UInt64 in [8 << 20, (12 << 20) - 8, 16 << 20, (18 << 20) - 8] {
            #expect(try memory.load(UInt64.self, at: GuestAddress(address)) == 0)
        }
        for address: UInt64 in [12 << 20, (16 << 20) - 8, 18 << 20] {
            #expect(try memory.load(UInt64.self, at: GuestAddress(address)) == 0x5a5a_5a5a_5a5a_5a5a)
        }
    }

    @Test func aMalformedQueueNeedsResetAndAResetRecovers() throws {
        let fixture = try BalloonFixture()
        let memory = fixture.memory
        #expect(fixture.negotiate(reportingFeatures))
        var reporting = TestDriver(memory: memory, size: 32)
        fixture.setUpQueue(2, reporting)
        fixture.driverOK()
        try reporting.setDescriptor(0, address: 0x100000, length: 4096, flags: 1, next: 0) // a loop
        try reporting.makeAvailable(0)
        fixture.transport.notify(queue: 2)
        #expect(fixture.needsReset)
        #expect(fixture.events.broken.count == 1)
        #expect(fixture.transport.read32(VirtioMMIORegister.interruptStatus) & VirtioInterrupt.configChange != 0)
        // Broken: further notifications do nothing.
        fixture.transport.notify(queue: 2)
        #expect(fixture.counters.reportedRanges == 0)
        // The driver resets and starts over; the device works again.
        #expect(fixture.negotiate(reportingFeatures))
        #expect(!fixture.needsReset)
        reporting = TestDriver(memory: memory, size: 32)
        try reporting.clear()
        fixture.setUpQueue(2, reporting)
        fixture.driverOK()
        try reporting.setDescriptor(0, address: 0x200000, length: 2 << 20, flags: 2)
        try reporting.makeAvailable(0)
        fixture.transport.notify(queue: 2)
        #expect(!fixture.needsReset)
        #expect(fixture.counters.reportedRanges == 1)
    }

    @Test func ringsOutsideRAMBreakTheDeviceAtQueueReady() throws {
        let fixture = try BalloonFixture()
        #expect(fixture.negotiate(reportingFeatures))
        var configuration = TestDriver(memory: fixture.memory, size: 32, base: 0x7fff_0000_0000)
        configuration = TestDriver(memory: fixture.memory, size: 32, base: 0x7fff_0000_0000)
        fixture.setUpQueue(2, configuration)
        #expect(fixture.needsReset)
        #expect(fixture.transport.read32(VirtioMMIORegister.queueReady) == 0)
    }

    @Test func notificationsBeforeDriverOKAreIgnored() throws {
        let fixture = try BalloonFixture()
        #expect(fixture.negotiate(reportingFeatures))
        var reporting = TestDriver(memory: fixture.memory, size: 32)
        fixture.setUpQueue(2, reporting)
        try reporting.setDescriptor(0, address: 0x200000, length: 2 << 20, flags: 2)
        try reporting.makeAvailable(0)
        fixture.transport.notify(queue: 2)
        #expect(fixture.counters.reportedRanges == 0)
        #expect(fixture.transport.notificationsBeforeDriverOK == 1)
        fixture.driverOK()
        fixture.transport.notify(queue: 2)
        #expect(fixture.counters.reportedRanges == 1)
    }

    @Test func inflateDiscardsValidFramesAndCountsTheRest() throws {
        let fixture = try BalloonFixture(options: .init(targetBytes: 8 << 20))
        let memory = fixture.memory
        #expect(fixture.transport.read32(VirtioMMIORegister.config) == 2048) // num_pages
        #expect(fixture.negotiate(VirtioFeature.version1))
        var inflate = TestDriver(memory: memory, size: 32, base: 0x10000)
        fixture.setUpQueue(0, inflate)
        fixture.setUpQueue(1, TestDriver(memory: memory, size: 32, base: 0x20000))
        fixture.driverOK()
        try memory.write([UInt8](repeating: 1, count: 3 * 4096), at: GuestAddress(0x400000))
        let pfns: [UInt32] = [0x400, 0x401, 0x402, 0xfff_ffff, 0x800]
        try memory.write(pfns.flatMap { pfn in (0..<4).map { UInt8(truncatingIfNeeded: pfn >> (8 * $0)) } }, at: GuestAddress(0x50000))
        try inflate.setDescriptor(0, address: 0x50000, length: UInt32(pfns.count * 4))
        try inflate.makeAvailable(0)
        fixture.transport.notify(queue: 0)
        fixture.transport.write32(VirtioMMIORegister.config + 4, 4)
        let counters = fixture.counters
        #expect(counters.inflatedPages == 4)
        #expect(counters.invalidPFNs == 1)
        #expect(try memory.load(UInt8.self, at: GuestAddress(0x401000)) == 0)
        #expect(fixture.transport.read32(VirtioMMIORegister.config + 4) == 4) // actual
    }

    /// Linux hands over pages allocated one after another in descending order (its array is
    /// filled from a list its allocations were pushed onto): still one discard per run.
    @Test func inflatedFramesInAnyOrderShareOneDiscardPerRun() throws {
        let fixture = try BalloonFixture(options: .init(targetBytes: 8 << 20))
        let memory = fixture.memory
        #expect(fixture.negotiate(VirtioFeature.version1))
        var inflate = TestDriver(memory: memory, size: 32, base: 0x10000)
        fixture.setUpQueue(0, inflate)
        fixture.setUpQueue(1, TestDriver(memory: memory, size: 32, base: 0x20000))
        fixture.driverOK()
        // 0x4ff down to 0x400, then 0x900, 0x902, 0x901 and 0x901 again.
        let pfns: [UInt32] = (0x400...0x4ff).reversed() + [0x900, 0x902, 0x901, 0x901]
        try memory.write(pfns.flatMap { pfn in (0..<4).map { UInt8(truncatingIfNeeded: pfn >> (8 * $0)) } }, at: GuestAddress(0x50000))
        try inflate.setDescriptor(0, address: 0x50000, length: UInt32(pfns.count * 4))
        try inflate.makeAvailable(0)
        fixture.transport.notify(queue: 0)
        let counters = fixture.counters
        #expect(counters.inflatedPages == 256 + 3)
        #expect(counters.inflateDiscardCalls == 2)
    }

    @Test func aNewTargetRaisesAConfigInterrupt() throws {
        let fixture = try BalloonFixture()
        #expect(fixture.negotiate(VirtioFeature.version1))
        fixture.driverOK()
        let generation = fixture.transport.read32(VirtioMMIORegister.configGeneration)
        #expect(fixture.transport.configChanged(BalloonDevice.self) { $0.setTarget(bytes: 256 << 20) })
        #expect(fixture.transport.read32(VirtioMMIORegister.config) == 65536)
        #expect(fixture.transport.read32(VirtioMMIORegister.configGeneration) != generation)
        #expect(fixture.transport.read32(VirtioMMIORegister.interruptStatus) & VirtioInterrupt.configChange != 0)
        #expect(fixture.events.interrupts == 1)
    }

    @Test func statisticsBufferIsHeldThenReturnedByTheTimer() throws {
        let fixture = try BalloonFixture(options: .init(statisticsInterval: .milliseconds(1)))
        let memory = fixture.memory
        #expect(fixture.negotiate(VirtioFeature.version1 | BalloonFeature.statsQueue))
        var stats = TestDriver(memory: memory, size: 8, base: 0x30000)
        fixture.setUpQueue(2, stats)
        fixture.driverOK()
        var entry: [UInt8] = [4, 0] // free memory
        withUnsafeBytes(of: UInt64(123_456).littleEndian) { entry += $0 }
        try memory.write(entry, at: GuestAddress(0x60000))
        try stats.setDescriptor(0, address: 0x60000, length: 10)
        try stats.makeAvailable(0)
        fixture.transport.notify(queue: 2)
        #expect(fixture.counters.guestStatistics[4] == 123_456)
        #expect(try stats.usedIndex() == 0) // held
        let deadline = ContinuousClock.now + .seconds(2)
        while try stats.usedIndex() == 0, ContinuousClock.now < deadline {
            fixture.transport.tick()
        }
        #expect(try stats.usedIndex() == 1)
        // That return was request 1; the driver's next figures answer it (its first answered none).
        #expect(fixture.counters.statisticsRequests == 1)
        #expect(fixture.counters.answeredStatisticsRequest == 0)
        try stats.makeAvailable(0)
        fixture.transport.notify(queue: 2)
        #expect(fixture.counters.statisticsUpdates == 2)
        #expect(fixture.counters.answeredStatisticsRequest == 1)
    }

    @Test func randomRegisterTrafficNeverTraps() throws {
        let fixture = try BalloonFixture(megabytes: 4)
        var generator = SystemRandomNumberGenerator()
        let registers: [UInt64] = [0x14, 0x20, 0x24, 0x30, 0x38, 0x44, 0x50, 0x64, 0x70, 0x80, 0x84, 0x90, 0x94, 0xa0, 0xa4, 0x100, 0x104, 0x1fc]
        for _ in 0..<20_000 {
            let register = registers.randomElement(using: &generator) ?? 0
            let value = UInt32.random(in: 0...UInt32.max, using: &generator) & (Bool.random(using: &generator) ? 0xff : 0xffff_ffff)
            if register == 0x50 { fixture.transport.notify(queue: Int(value % 6)) } else { fixture.transport.write32(register, value) }
            _ = fixture.transport.read32(registers.randomElement(using: &generator) ?? 0)
            fixture.transport.tick()
        }
    }
}

@Suite struct EarlyKickTests {
    /// Linux posts and kicks its stats buffer before DRIVER_OK: the buffer must not be lost.
    @Test func aKickBeforeDriverOKIsServedAtDriverOK() throws {
        let fixture = try BalloonFixture(options: .init(statisticsInterval: .milliseconds(1)))
        let memory = fixture.memory
        #expect(fixture.negotiate(VirtioFeature.version1 | BalloonFeature.statsQueue))
        var stats = TestDriver(memory: memory, size: 8, base: 0x30000)
        fixture.setUpQueue(2, stats)
        try memory.write([4, 0, 1, 0, 0, 0, 0, 0, 0, 0], at: GuestAddress(0x60000))
        try stats.setDescriptor(0, address: 0x60000, length: 10)
        try stats.makeAvailable(0)
        fixture.transport.notify(queue: 2)
        #expect(fixture.counters.statisticsUpdates == 0)
        fixture.driverOK()
        #expect(fixture.counters.statisticsUpdates == 1)
    }
}
