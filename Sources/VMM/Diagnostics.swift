#if canImport(Glibc)
import Glibc
#endif

/// Ebb's own messages: one line each on stderr, prefixed "ebb: ", never mixed with the guest's
/// serial output on stdout; and to the logger's file or FIFO once one is configured (`Log`).
public func report(_ message: String, level: LogLevel = .info, file: String = #fileID, line: Int = #line) {
    let text = "ebb: \(message)\n"
    _ = text.withCString { write(STDERR_FILENO, $0, strlen($0)) }
    Log.write(message, level: level, file: file, line: line)
}

/// A line for the logger only (`--log-path` with `--level Debug` or Trace), never stderr: what
/// Ebb decided and why, too much for a user's terminal.
public func debugLog(_ message: @autoclosure () -> String, file: String = #fileID, line: Int = #line) {
    guard Log.accepts(.debug) else { return }
    Log.write(message(), level: .debug, file: file, line: line)
}
