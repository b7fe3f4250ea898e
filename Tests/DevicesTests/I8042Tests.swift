import Synchronization
import Testing
@testable import Devices

/// The i8042 and its keyboard as Linux's i8042 and atkbd drivers probe them, and Ctrl+Alt+Del.
@Suite struct I8042Tests {
    final class Interrupts: Sendable {
        private let count = Mutex(0)
        var raised: Int { count.withLock { $0 } }
        func raise() { count.withLock { $0 += 1 } }
    }

    let interrupts = Interrupts()
    let requests = RequestLog()
    var controller: I8042Device {
        I8042Device(onRequest: { [requests] in requests.record($0) }, interrupt: { [interrupts] in interrupts.raise() }, nextByteDelay: .zero)
    }

    func status(_ device: I8042Device) -> UInt8 {
        var value: UInt8 = 0
        withUnsafeMutableBytes(of: &value) { device.read(offset: I8042Device.commandOffset, data: $0) }
        return value
    }

    func command(_ device: I8042Device, _ byte: UInt8) {
        withUnsafeBytes(of: byte) { device.write(offset: I8042Device.commandOffset, data: $0) }
    }

    func send(_ device: I8042Device, _ byte: UInt8) {
        withUnsafeBytes(of: byte) { device.write(offset: 0, data: $0) }
    }

    /// Every byte waiting, read as the guest does: while the status says the output is full.
    func drain(_ device: I8042Device) -> [UInt8] {
        var bytes: [UInt8] = []
        while status(device) & 0x01 != 0, bytes.count < 100 {
            var value: UInt8 = 0
            withUnsafeMutableBytes(of: &value) { device.read(offset: 0, data: $0) }
            bytes.append(value)
        }
        return bytes
    }

    @Test func linuxsControllerProbeFindsAWorkingControllerWithoutAMouse() {
        let device = controller
        #expect(status(device) != 0xff, "0xff means no controller to Linux")
        #expect(drain(device).isEmpty)
        command(device, 0xaa)
        #expect(drain(device) == [0x55], "self-test passed")
        command(device, 0x20)
        let initial = drain(device)
        #expect(initial == [0x05], "keyboard interrupt and system flag, no translation")
        command(device, 0x60)
        send(device, 0x10 | 0x04)
        command(device, 0x20)
        #expect(drain(device) == [0x14], "the command byte Linux wrote")
        command(device, 0xa9)
        #expect(drain(device) == [0xff], "no AUX port")
        #expect(requests.requests.isEmpty)
    }

    @Test func theKeyboardAnswersAtkbdsProbeOneInterruptPerByte() {
        let device = controller
        send(device, 0xf2)
        #expect(interrupts.raised == 1)
        #expect(drain(device) == [0xfa, 0xab, 0x83], "ACK and an MF2 keyboard's id")
        #expect(interrupts.raised == 3, "each read raised the interrupt for the next byte")
        send(device, 0xed)
        send(device, 0x00)
        #expect(drain(device) == [0xfa, 0xfa], "set LEDs and its argument, each acknowledged")
        send(device, 0xf0)
        send(device, 0x00)
        #expect(drain(device) == [0xfa, 0xfa, 0x02], "scan code set 2")
        send(device, 0xff)
        #expect(drain(device) == [0xfa, 0xaa], "reset: ACK, self-test passed")
        send(device, 0xf4)
        #expect(drain(device) == [0xfa])
    }

    @Test func ctrlAltDelIsTypedInSet2AndNotIntoADisabledKeyboard() {
        let device = controller
        device.sendCtrlAltDel()
        #expect(drain(device) == [0x14, 0x11, 0xe0, 0x71])
        command(device, 0xad)
        device.sendCtrlAltDel()
        #expect(drain(device).isEmpty)
        #expect(device.droppedBytes == 4)
        command(device, 0xae)
        // A guest that never reads: the queue stops at its limit.
        for _ in 0..<100 { device.sendCtrlAltDel() }
        #expect(drain(device).count == I8042Device.queueLimit)
    }

    @Test func noInterruptWhileTheGuestMaskedIt() {
        let device = controller
        command(device, 0x60)
        send(device, 0x04)
        device.sendCtrlAltDel()
        #expect(interrupts.raised == 0)
        #expect(drain(device).count == 4, "a polling guest still reads the keys")
    }

    @Test func theNextBytesInterruptComesAfterTheReadNotInsideIt() async throws {
        let device = I8042Device(onRequest: { _ in }, interrupt: { [interrupts] in interrupts.raise() }, timer: TaskTimer())
        device.sendCtrlAltDel()
        let beforeRead = interrupts.raised
        #expect(beforeRead >= 1)
        var value: UInt8 = 0
        withUnsafeMutableBytes(of: &value) { device.read(offset: 0, data: $0) }
        #expect(value == 0x14)
        #expect(interrupts.raised == beforeRead, "not raised inside the guest's read")
        for _ in 0..<400 where interrupts.raised == beforeRead { try await Task.sleep(for: .milliseconds(5)) }
        // (And again every 20 ms while the next byte stays unread: a loaded machine may see several.)
        #expect(interrupts.raised > beforeRead, "raised for the next byte a little later")
    }

    @Test func anUnreadByteRaisesItsInterruptAgain() async throws {
        let device = I8042Device(onRequest: { _ in }, interrupt: { [interrupts] in interrupts.raise() }, timer: TaskTimer())
        device.sendCtrlAltDel()
        for _ in 0..<200 where interrupts.raised < 3 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(interrupts.raised >= 3, "a lost edge is raised again while the byte stays unread")
        #expect(drain(device) == [0x14, 0x11, 0xe0, 0x71])
    }

    @Test func commandFEResetsTheMachine() {
        let device = controller
        command(device, 0xfe)
        #expect(requests.requests == [.reset])
    }
}

/// Delayed calls on Swift tasks: the machine's `TimerThread` lives in VMM, above these tests.
struct TaskTimer: DelayedCalls {
    func call(after delay: Duration, _ work: @escaping @Sendable () -> Void) {
        Task {
            try? await Task.sleep(for: delay)
            work()
        }
    }
}
