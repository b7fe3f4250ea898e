import Synchronization

/// The i8042 keyboard controller with a PS/2 keyboard behind it: enough for Linux's i8042 and
/// atkbd drivers to find a keyboard (self-test, the command byte, GETID, reset, LEDs, typematic
/// rate), for Firecracker's `SendCtrlAltDel` to type Ctrl+Alt+Del into the guest, and for the
/// classic reset (command 0xFE). Mapped at 0x60 with a 5-byte window: 0x60 data, 0x64
/// status/command. The keyboard speaks scan code set 2 untranslated (the command byte's
/// translation bit is clear, as Firecracker's is), so Linux's atkbd sees set 2 codes.
public final class I8042Device: BusDevice {
    public static let windowLength: UInt64 = 5
    static let dataOffset: UInt64 = 0
    public static let commandOffset: UInt64 = 4

    enum Status {
        static let outputFull: UInt8 = 0x01
        /// Set once the controller passed its self-test (always, here).
        static let system: UInt8 = 0x04
        /// The last write was to the command port.
        static let command: UInt8 = 0x08
        /// The keyboard is not inhibited (no keylock): Linux warns "Keylock active" without it.
        static let notInhibited: UInt8 = 0x10
    }

    enum Command {
        static let readCommandByte: UInt8 = 0x20
        static let writeCommandByte: UInt8 = 0x60
        static let disableAux: UInt8 = 0xa7
        static let enableAux: UInt8 = 0xa8
        static let testAux: UInt8 = 0xa9
        static let selfTest: UInt8 = 0xaa
        static let testKeyboardPort: UInt8 = 0xab
        static let disableKeyboard: UInt8 = 0xad
        static let enableKeyboard: UInt8 = 0xae
        static let readOutputPort: UInt8 = 0xd0
        static let writeOutputPort: UInt8 = 0xd1
        static let writeKeyboardOutput: UInt8 = 0xd2
        static let pulseResetLine: UInt8 = 0xfe
    }

    enum CommandByte {
        static let keyboardInterrupt: UInt8 = 0x01
        static let system: UInt8 = 0x04
        static let keyboardDisabled: UInt8 = 0x10
    }

    /// What the keyboard answers (PS/2).
    enum Keyboard {
        static let acknowledge: UInt8 = 0xfa
        static let selfTestPassed: UInt8 = 0xaa
        static let echo: UInt8 = 0xee
        /// GETID's answer: an MF2 keyboard.
        static let identity: [UInt8] = [0xab, 0x83]
        static let setLEDs: UInt8 = 0xed
        static let echoCommand: UInt8 = 0xee
        static let scanCodeSet: UInt8 = 0xf0
        static let getID: UInt8 = 0xf2
        static let setTypematic: UInt8 = 0xf3
        static let reset: UInt8 = 0xff
    }

    /// Ctrl, Alt and Delete pressed (set 2 make codes), as Firecracker types them.
    static let ctrlAltDel: [UInt8] = [0x14, 0x11, 0xe0, 0x71]
    /// Bytes waiting for the guest beyond this are dropped: a guest that never reads its
    /// keyboard must not make the VMM hold an ever longer queue.
    static let queueLimit = 64

    private struct State {
        var output: [UInt8] = []
        var commandByte = CommandByte.keyboardInterrupt | CommandByte.system
        /// A controller command waiting for its data byte (0x60, 0xD1, 0xD2).
        var pendingControllerCommand: UInt8?
        /// A keyboard command waiting for its argument byte (0xED, 0xF0, 0xF3).
        var pendingKeyboardCommand: UInt8?
        var lastWriteWasCommand = false
        var dropped: UInt64 = 0
        /// Data-port reads so far: a repeated interrupt is for a byte no read has taken.
        var reads: UInt64 = 0
    }

    private let state = Mutex(State())
    private let onRequest: @Sendable (SystemRequest) -> Void
    private let interrupt: @Sendable () -> Void

    private let nextByteDelay: Duration
    private let timer: (any DelayedCalls)?

    /// `interrupt` raises the keyboard's IRQ 1; it is called with no lock held. `nextByteDelay`:
    /// how long after the guest read a byte the interrupt for the next one comes, on `timer`
    /// (without a timer, or with 0: at once, and never repeated).
    public init(onRequest: @escaping @Sendable (SystemRequest) -> Void, interrupt: @escaping @Sendable () -> Void = {},
                timer: (any DelayedCalls)? = nil, nextByteDelay: Duration = .milliseconds(2)) {
        self.onRequest = onRequest
        self.interrupt = interrupt
        self.timer = timer
        self.nextByteDelay = nextByteDelay
    }

    /// The interrupt for the byte now first in the queue, `nextByteDelay` from now; and again
    /// every `retryInterval` while the guest has not read it (at most `retries` times): a KVM
    /// pulse can be lost (Debian's kernel once took Ctrl and never saw Alt or Delete, its IRQ 1
    /// count unmoved), where on hardware the line would stay up until the byte is read. A guest
    /// that finds no byte on a repeated interrupt ignores it.
    private func raiseLater(attempt: Int = 0) {
        guard nextByteDelay > .zero, let timer else { return interrupt() }
        let reads = state.withLock { $0.reads }
        let delay = attempt == 0 ? nextByteDelay : Self.retryInterval
        timer.call(after: delay) { [self] in
            // Still unread, and the interrupt still wanted (the guest may have read it by polling).
            let wanted = state.withLock { !$0.output.isEmpty && $0.commandByte & CommandByte.keyboardInterrupt != 0 && $0.reads == reads }
            guard wanted else { return }
            interrupt()
            if attempt < Self.retries { raiseLater(attempt: attempt + 1) }
        }
    }

    static let retryInterval: Duration = .milliseconds(20)
    static let retries = 50

    /// Bytes never queued: typed into a disabled keyboard, or beyond the queue's limit.
    public var droppedBytes: UInt64 { state.withLock { $0.dropped } }

    /// Types Ctrl+Alt+Del, as Firecracker's `SendCtrlAltDel` does: the guest decides what it means
    /// (Linux reboots, or signals its init, which may power off).
    public func sendCtrlAltDel() { deliver(Self.ctrlAltDel) }

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        switch offset {
        case Self.dataOffset:
            let (byte, more) = state.withLock { state -> (UInt8, Bool) in
                guard !state.output.isEmpty else { return (0, false) }
                state.reads += 1
                let byte = state.output.removeFirst()
                return (byte, !state.output.isEmpty && state.commandByte & CommandByte.keyboardInterrupt != 0)
            }
            data.storeLittleEndian(UInt64(byte))
            // One byte per interrupt, as the hardware does, the next one a little later, as a
            // keyboard clocks its next byte in: raised inside this exit, before the guest's handler
            // returned, the edge was lost (Debian's kernel on the emulated AMD-V host took the
            // first byte of Ctrl+Alt+Del and never saw the rest); 2 ms later it is taken.
            if more { raiseLater() }
        case Self.commandOffset:
            let status = state.withLock { state in
                (state.output.isEmpty ? 0 : Status.outputFull) | Status.system | Status.notInhibited
                    | (state.lastWriteWasCommand ? Status.command : 0)
            }
            data.storeLittleEndian(UInt64(status))
        default:
            data.storeLittleEndian(0)
        }
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        let value = UInt8(truncatingIfNeeded: data.littleEndianValue)
        switch offset {
        case Self.commandOffset: controllerCommand(value)
        case Self.dataOffset: dataWrite(value)
        default: break
        }
    }

    private func controllerCommand(_ command: UInt8) {
        var reply: [UInt8] = []
        state.withLock { state in
            state.lastWriteWasCommand = true
            state.pendingControllerCommand = nil
            switch command {
            case Command.readCommandByte: reply = [state.commandByte]
            case Command.writeCommandByte, Command.writeOutputPort, Command.writeKeyboardOutput:
                state.pendingControllerCommand = command
            case Command.selfTest: reply = [0x55]
            case Command.testKeyboardPort: reply = [0x00]
            // No mouse: its port fails its test, which Linux takes as "no AUX port".
            case Command.testAux: reply = [0xff]
            case Command.disableKeyboard: state.commandByte |= CommandByte.keyboardDisabled
            case Command.enableKeyboard: state.commandByte &= ~CommandByte.keyboardDisabled
            case Command.readOutputPort: reply = [0x01]
            default: break
            }
        }
        if command == Command.pulseResetLine {
            onRequest(.reset)
            return
        }
        if !reply.isEmpty { deliver(reply, fromController: true) }
    }

    private func dataWrite(_ value: UInt8) {
        var reply: [UInt8] = []
        state.withLock { state in
            state.lastWriteWasCommand = false
            if let pending = state.pendingControllerCommand {
                state.pendingControllerCommand = nil
                switch pending {
                case Command.writeCommandByte: state.commandByte = value
                case Command.writeKeyboardOutput: reply = [value]
                default: break
                }
                return
            }
            // A byte for the keyboard: an argument of the command before, or a command.
            if let pending = state.pendingKeyboardCommand {
                state.pendingKeyboardCommand = nil
                // "Get the scan code set" (F0 00) answers which; every other argument is acknowledged.
                reply = pending == Keyboard.scanCodeSet && value == 0 ? [Keyboard.acknowledge, 0x02] : [Keyboard.acknowledge]
                return
            }
            switch value {
            case Keyboard.setLEDs, Keyboard.scanCodeSet, Keyboard.setTypematic:
                state.pendingKeyboardCommand = value
                reply = [Keyboard.acknowledge]
            case Keyboard.getID: reply = [Keyboard.acknowledge] + Keyboard.identity
            case Keyboard.reset: reply = [Keyboard.acknowledge, Keyboard.selfTestPassed]
            case Keyboard.echoCommand: reply = [Keyboard.echo]
            default: reply = [Keyboard.acknowledge]
            }
        }
        if !reply.isEmpty { deliver(reply, fromController: true) }
    }

    /// Queues bytes for the guest and raises IRQ 1 if the buffer was empty and the interrupt is
    /// enabled (the guest's read raises it for the next byte). Keys are not typed into a disabled
    /// keyboard; the controller's own answers always arrive.
    private func deliver(_ bytes: [UInt8], fromController: Bool = false) {
        let raise = state.withLock { state -> Bool in
            guard fromController || state.commandByte & CommandByte.keyboardDisabled == 0 else {
                state.dropped += UInt64(bytes.count)
                return false
            }
            let wasEmpty = state.output.isEmpty
            let room = max(0, Self.queueLimit - state.output.count)
            state.output += bytes.prefix(room)
            state.dropped += UInt64(bytes.count - min(room, bytes.count))
            return wasEmpty && !state.output.isEmpty && state.commandByte & CommandByte.keyboardInterrupt != 0
        }
        if raise {
            interrupt()
            // Then again while it stays unread (see raiseLater).
            if nextByteDelay > .zero { raiseLater(attempt: 1) }
        }
    }
}

