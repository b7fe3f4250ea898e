import Synchronization
import Testing
@testable import Devices

final class RequestLog: Sendable {
    private let state = Mutex<[SystemRequest]>([])
    var requests: [SystemRequest] { state.withLock { $0 } }
    func record(_ request: SystemRequest) { state.withLock { $0.append(request) } }
}

@Suite struct BusTests {
    @Test func routesByWindowAndCountsTheRest() throws {
        let recorder = Recorder()
        let uart = Serial8250(output: { recorder.byte($0) }, interrupt: {})
        let bus = try Bus(name: "io", windows: [.init(base: 0x3f8, length: 8, device: uart)])
        withUnsafeBytes(of: UInt8(0x41)) { bus.write(address: 0x3f8, data: $0) }
        #expect(recorder.bytes == [0x41])
        var value: UInt32 = 0
        withUnsafeMutableBytes(of: &value) { bus.read(address: 0x1234, data: $0) }
        #expect(value == 0xffff_ffff)
        // An access running past the window's end belongs to nobody.
        withUnsafeMutableBytes(of: &value) { bus.read(address: 0x3fe, data: $0) }
        withUnsafeBytes(of: UInt8(1)) { bus.write(address: 0x80, data: $0) }
        #expect(bus.unclaimedAccesses == 3)
    }

    @Test func overlappingWindowsAreRefused() {
        let log = RequestLog()
        let device = I8042Device(onRequest: { log.record($0) })
        #expect(throws: BusError.self) {
            try Bus(name: "io", windows: [.init(base: 0x60, length: 5, device: device), .init(base: 0x64, length: 1, device: device)])
        }
    }

    @Test func acpiSleepAndResetRegistersRequestPowerOffAndReset() {
        let log = RequestLog()
        let power = ACPIPowerDevice(onRequest: { log.record($0) })
        power.writeByte(0, 5 << 2)            // SLP_TYP without SLP_EN: nothing
        power.writeByte(0, (3 << 2) | 0x20)   // another sleep state: nothing
        power.writeByte(0, (5 << 2) | 0x20)   // S5 + SLP_EN
        power.writeByte(2, 0x02)              // wrong reset value
        power.writeByte(2, ACPIPowerDevice.resetValue)
        #expect(log.requests == [.powerOff, .reset])
    }

    @Test func i8042PulseResetLine() {
        let log = RequestLog()
        let controller = I8042Device(onRequest: { log.record($0) })
        controller.writeByte(0, 0xfe) // data port: a byte for the keyboard, not a command
        controller.writeByte(4, 0xd1)
        #expect(log.requests.isEmpty)
        controller.writeByte(4, 0xfe)
        #expect(log.requests == [.reset])
        #expect(controller.readByte(4) & 0x04 != 0, "the system flag: the controller passed its self-test")
    }
}
