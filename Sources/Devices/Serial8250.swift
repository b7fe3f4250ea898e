import ByteOrder
import Synchronization

/// A 16550A-compatible UART as Linux's 8250 driver and simple guests drive it: transmit, receive
/// with a FIFO, the interrupt identification logic, divisor latch, scratch and loopback (the
/// driver's probe checks loopback). Bytes go out through `output`; `interrupt` is called when the
/// UART raises its interrupt line (edge-triggered ISA IRQ).
public final class Serial8250: BusDevice {
    public static let windowLength: UInt64 = 8
    public static let inputCapacity = 4096

    enum Register {
        static let data: UInt64 = 0          // RBR / THR, or DLL with DLAB
        static let interruptEnable: UInt64 = 1 // IER, or DLM with DLAB
        static let interruptID: UInt64 = 2     // IIR (read) / FCR (write)
        static let lineControl: UInt64 = 3
        static let modemControl: UInt64 = 4
        static let lineStatus: UInt64 = 5
        static let modemStatus: UInt64 = 6
        static let scratch: UInt64 = 7
    }

    enum Bits {
        static let ierReceivedData: UInt8 = 1 << 0
        static let ierTransmitEmpty: UInt8 = 1 << 1
        static let iirNoInterrupt: UInt8 = 0x01
        static let iirTransmitEmpty: UInt8 = 0x02
        static let iirReceivedData: UInt8 = 0x04
        static let iirFIFOEnabled: UInt8 = 0xc0
        static let lcrDivisorLatch: UInt8 = 1 << 7
        static let lsrDataReady: UInt8 = 1 << 0
        static let lsrOverrun: UInt8 = 1 << 1
        static let lsrTransmitHoldingEmpty: UInt8 = 1 << 5
        static let lsrTransmitterEmpty: UInt8 = 1 << 6
        static let mcrLoopback: UInt8 = 1 << 4
        /// With nothing attached, the modem lines read as carrier, data set ready and clear to send.
        static let msrDefault: UInt8 = 0xb0
    }

    struct State {
        var interruptEnable: UInt8 = 0
        var lineControl: UInt8 = 0x03 // 8N1
        var modemControl: UInt8 = 0x08 // OUT2
        var scratch: UInt8 = 0
        var divisorLow: UInt8 = 0x0c // 9600 baud
        var divisorHigh: UInt8 = 0
        var fifoControl: UInt8 = 0
        var transmitEmptyPending = false
        var overrun = false
        var input: [UInt8] = []
        var inputHead = 0
        var droppedBytes: UInt64 = 0

        var hasInput: Bool { inputHead < input.count }

        /// Which interrupt the UART presents now, receive first (16550 priority).
        var pendingInterrupt: UInt8 {
            if interruptEnable & Bits.ierReceivedData != 0, hasInput { return Bits.iirReceivedData }
            if interruptEnable & Bits.ierTransmitEmpty != 0, transmitEmptyPending { return Bits.iirTransmitEmpty }
            return Bits.iirNoInterrupt
        }

        mutating func popInput() -> UInt8 {
            guard hasInput else { return 0 }
            let byte = input[inputHead]
            inputHead += 1
            if inputHead == input.count {
                input.removeAll(keepingCapacity: true)
                inputHead = 0
            }
            return byte
        }

        mutating func pushInput(_ bytes: some Sequence<UInt8>) {
            for byte in bytes {
                if input.count - inputHead >= Serial8250.inputCapacity {
                    droppedBytes += 1
                    overrun = true
                } else {
                    input.append(byte)
                }
            }
        }
    }

    private let state = Mutex(State())
    private let output: @Sendable (UInt8) -> Void
    private let interrupt: @Sendable () -> Void

    public init(output: @escaping @Sendable (UInt8) -> Void, interrupt: @escaping @Sendable () -> Void) {
        self.output = output
        self.interrupt = interrupt
    }

    /// Bytes typed on the host side, for the guest to read.
    public func receive(_ bytes: [UInt8]) {
        let raise = state.withLock { state -> Bool in
            let before = state.pendingInterrupt
            state.pushInput(bytes)
            return before != Bits.iirReceivedData && state.pendingInterrupt == Bits.iirReceivedData
        }
        if raise { interrupt() }
    }

    /// Input bytes dropped because the guest did not read them in time.
    public var droppedInputBytes: UInt64 { state.withLock { $0.droppedBytes } }

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        let value = state.withLock { state -> UInt8 in
            let latch = state.lineControl & Bits.lcrDivisorLatch != 0
            switch offset {
            case Register.data:
                return latch ? state.divisorLow : state.popInput()
            case Register.interruptEnable:
                return latch ? state.divisorHigh : state.interruptEnable
            case Register.interruptID:
                let pending = state.pendingInterrupt
                // Reading IIR acknowledges a transmit-empty interrupt (16550 behaviour).
                if pending == Bits.iirTransmitEmpty { state.transmitEmptyPending = false }
                return pending | (state.fifoControl & 1 != 0 ? Bits.iirFIFOEnabled : 0)
            case Register.lineControl:
                return state.lineControl
            case Register.modemControl:
                return state.modemControl
            case Register.lineStatus:
                var status = Bits.lsrTransmitHoldingEmpty | Bits.lsrTransmitterEmpty
                if state.hasInput { status |= Bits.lsrDataReady }
                if state.overrun { status |= Bits.lsrOverrun; state.overrun = false }
                return status
            case Register.modemStatus:
                guard state.modemControl & Bits.mcrLoopback != 0 else { return Bits.msrDefault }
                // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
                let mcr = state.modemControl
                return (mcr & 0x01) << 5 | (mcr & 0x02) << 3 | (mcr & 0x04) << 4 | (mcr & 0x08) << 4
            case Register.scratch:
                return state.scratch
            default:
                return 0
            }
        }
        data.storeLittleEndian(UInt64(value))
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        let value = UInt8(truncatingIfNeeded: data.littleEndianValue)
        var transmitted: UInt8?
        let raise = state.withLock { state -> Bool in
            let before = state.pendingInterrupt
            let latch = state.lineControl & Bits.lcrDivisorLatch != 0
            switch offset {
            case Register.data where latch:
                state.divisorLow = value
            case Register.data:
                if state.modemControl & Bits.mcrLoopback != 0 {
                    state.pushInput([value])
                } else {
                    transmitted = value
                }
                // The byte leaves at once, so the holding register is empty again.
                state.transmitEmptyPending = true
            case Register.interruptEnable where latch:
                state.divisorHigh = value
            case Register.interruptEnable:
                let enabledTransmit = value & Bits.ierTransmitEmpty != 0 && state.interruptEnable & Bits.ierTransmitEmpty == 0
                state.interruptEnable = value & 0x0f
                if enabledTransmit { state.transmitEmptyPending = true }
            case Register.interruptID:
                state.fifoControl = value
                if value & 0x02 != 0 { // clear receive FIFO
                    state.input.removeAll()
                    state.inputHead = 0
                }
            case Register.lineControl:
                state.lineControl = value
            case Register.modemControl:
                state.modemControl = value & 0x1f
            case Register.scratch:
                state.scratch = value
            default:
                break
            }
            let after = state.pendingInterrupt
            // Each new reason to interrupt is a new edge; a transmit with THRE enabled is one too.
            return after != Bits.iirNoInterrupt && (after != before || (transmitted != nil && after == Bits.iirTransmitEmpty))
        }
        if let transmitted { output(transmitted) }
        if raise { interrupt() }
    }
}
