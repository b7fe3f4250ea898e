import Synchronization
import Testing
@testable import Devices

/// Collects what a device emits, from any thread.
final class Recorder: Sendable {
    private let state = Mutex<(bytes: [UInt8], interrupts: Int)>(([], 0))
    var bytes: [UInt8] { state.withLock { $0.bytes } }
    var interrupts: Int { state.withLock { $0.interrupts } }
    func byte(_ value: UInt8) { state.withLock { $0.bytes.append(value) } }
    func interrupt() { state.withLock { $0.interrupts += 1 } }
}

extension BusDevice {
    func readByte(_ offset: UInt64) -> UInt8 {
        var value: UInt8 = 0
        withUnsafeMutableBytes(of: &value) { read(offset: offset, data: $0) }
        return value
    }

    func writeByte(_ offset: UInt64, _ value: UInt8) {
        withUnsafeBytes(of: value) { write(offset: offset, data: $0) }
    }
}

@Suite struct Serial8250Tests {
    let recorder = Recorder()
    var uart: Serial8250 {
        let recorder = self.recorder
        return Serial8250(output: { recorder.byte($0) }, interrupt: { recorder.interrupt() })
    }

    @Test func transmitsAndAlwaysReportsAnEmptyTransmitter() {
        let uart = self.uart
        for byte in Array("ok\n".utf8) { uart.writeByte(0, byte) }
        #expect(recorder.bytes == Array("ok\n".utf8))
        #expect(uart.readByte(5) & 0x60 == 0x60)
        #expect(uart.readByte(5) & 0x01 == 0) // no data ready
    }

    @Test func divisorLatchAndScratchAreRegisters() {
        let uart = self.uart
        uart.writeByte(3, 0x80) // DLAB
        uart.writeByte(0, 0x01)
        uart.writeByte(1, 0x02)
        #expect(uart.readByte(0) == 0x01 && uart.readByte(1) == 0x02)
        uart.writeByte(3, 0x03)
        #expect(recorder.bytes.isEmpty) // divisor writes are not output
        uart.writeByte(7, 0x5a)
        #expect(uart.readByte(7) == 0x5a)
    }

    @Test func loopbackPassesLinuxsProbe() {
        let uart = self.uart
        uart.writeByte(4, 0x10 | 0x0a) // loopback, RTS, OUT2
        #expect(uart.readByte(6) & 0xf0 == 0x90)
        uart.writeByte(0, 0x41) // looped back, not output
        #expect(recorder.bytes.isEmpty)
        #expect(uart.readByte(0) == 0x41)
    }

    @Test func receiveRaisesTheDataInterruptOnlyWhenEnabled() {
        let uart = self.uart
        uart.receive([0x61])
        #expect(recorder.interrupts == 0)
        #expect(uart.readByte(2) & 0x0f == 0x01) // no interrupt pending
        uart.writeByte(1, 0x01) // enable received-data interrupt
        #expect(recorder.interrupts == 1)
        #expect(uart.readByte(2) & 0x0f == 0x04)
        #expect(uart.readByte(5) & 0x01 == 0x01)
        #expect(uart.readByte(0) == 0x61)
        #expect(uart.readByte(5) & 0x01 == 0)
        uart.receive([0x62, 0x63])
        #expect(recorder.interrupts == 2)
    }

    @Test func transmitEmptyInterruptIsAcknowledgedByReadingIIR() {
        let uart = self.uart
        uart.writeByte(1, 0x02)
        #expect(recorder.interrupts == 1)
        #expect(uart.readByte(2) & 0x0f == 0x02)
        #expect(uart.readByte(2) & 0x0f == 0x01)
        uart.writeByte(0, 0x41)
        #expect(recorder.interrupts == 2)
    }

    @Test func inputBeyondCapacityIsDroppedAndCounted() {
        let uart = self.uart
        uart.receive([UInt8](repeating: 0x20, count: Serial8250.inputCapacity + 10))
        #expect(uart.droppedInputBytes == 10)
        #expect(uart.readByte(5) & 0x02 == 0x02) // overrun reported once
        #expect(uart.readByte(5) & 0x02 == 0)
    }
}
