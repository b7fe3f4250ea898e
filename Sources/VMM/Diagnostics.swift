#if canImport(Glibc)
import Glibc
#endif

/// Ebb's own messages: one line each on stderr, prefixed "ebb: ", never mixed with the guest's
/// serial output on stdout.
public func report(_ message: String) {
    let line = "ebb: \(message)\n"
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
}
