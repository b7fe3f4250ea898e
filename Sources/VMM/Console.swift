#if canImport(Glibc)
import Glibc
#endif
import Devices
import Synchronization

/// Connects the guest's serial port to the host terminal: guest output to stdout, keystrokes to
/// the UART. When stdin is a terminal it is put in raw mode (so Ctrl-C reaches the guest) and
/// restored on every exit path; Ctrl-A x quits Ebb, Ctrl-A Ctrl-A sends a literal Ctrl-A.
final class Console: @unchecked Sendable {
    static let escapeByte: UInt8 = 0x01 // Ctrl-A
    static let quitByte = UInt8(ascii: "x")

    private let serial: Serial8250
    private let onQuit: @Sendable () -> Void
    private var thread: OSThread?
    private var wakePipe: (read: Int32, write: Int32) = (-1, -1)

    init(serial: Serial8250, onQuit: @escaping @Sendable () -> Void) {
        self.serial = serial
        self.onQuit = onQuit
    }

    func start() throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SystemError(operation: "pipe", errno: errno) }
        wakePipe = (fds[0], fds[1])
        if isatty(STDIN_FILENO) == 1 { TerminalMode.enterRaw() }
        let (serial, onQuit, wake) = (self.serial, self.onQuit, wakePipe.read)
        thread = try OSThread(name: "ebb-console", role: .console) {
            Sandbox.confineThisThread(as: .console)
            Self.pump(serial: serial, wake: wake, onQuit: onQuit)
        }
    }

    func stop() {
        if wakePipe.write >= 0 {
            var byte: UInt8 = 0
            _ = write(wakePipe.write, &byte, 1)
        }
        thread?.join()
        thread = nil
        for fd in [wakePipe.read, wakePipe.write] where fd >= 0 { close(fd) }
        wakePipe = (-1, -1)
        TerminalMode.restore()
    }

    /// Reads stdin until EOF or a wake-up, forwarding bytes to the UART.
    private static func pump(serial: Serial8250, wake: Int32, onQuit: @Sendable () -> Void) {
        var escaped = false
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            var fds = [pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, -1)
            if ready < 0 { if errno == EINTR { continue } else { return } }
            if fds[1].revents != 0 { return }
            guard fds[0].revents != 0 else { continue }
            let count = read(STDIN_FILENO, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return } // EOF: no more input, the guest keeps running
            var forward: [UInt8] = []
            for byte in buffer[0..<count] {
                if escaped {
                    escaped = false
                    if byte == quitByte { onQuit(); return }
                    forward.append(byte)
                } else if byte == escapeByte, TerminalMode.isRaw {
                    escaped = true
                } else {
                    forward.append(byte)
                }
            }
            if !forward.isEmpty { serial.receive(forward) }
        }
    }
}

/// The host terminal's saved settings; restored at exit even if Ebb leaves through `exit()`.
enum TerminalMode {
    private static let saved = Mutex<termios?>(nil)

    static var isRaw: Bool { saved.withLock { $0 != nil } }

    static func enterRaw() {
        var original = termios()
        guard tcgetattr(STDIN_FILENO, &original) == 0 else { return }
        var raw = original
        cfmakeraw(&raw)
        // Keep output processing so the guest's "\n" still starts a new line on the host.
        raw.c_oflag |= tcflag_t(OPOST | ONLCR)
        guard tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0 else { return }
        saved.withLock { $0 = original }
        atexit { TerminalMode.restore() }
    }

    static func restore() {
        saved.withLock { state in
            guard var original = state else { return }
            tcsetattr(STDIN_FILENO, TCSANOW, &original)
            state = nil
        }
    }
}
