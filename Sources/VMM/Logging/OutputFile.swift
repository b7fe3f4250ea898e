#if canImport(Glibc)
import Glibc
#endif

/// A file or named pipe that Ebb appends lines to: the logger's and the metrics' destination, as
/// Firecracker's `log_path` and `metrics_path`. A FIFO is opened read-write, so that opening never
/// waits for a reader, and non-blocking, so that a reader that stops draining it costs a missed
/// line, never a stalled VMM thread.
public final class OutputFile: Sendable {
    public let path: String
    private let fd: Int32

    public init(path: String) throws(OutputFileError) {
        guard !path.isEmpty else { throw OutputFileError(path: path, reason: "the path is empty") }
        let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw OutputFileError(path: path, reason: String(cString: strerror(errno))) }
        self.path = path
        self.fd = fd
    }

    deinit { close(fd) }

    /// Appends `line` and a newline in one write; false when it could not be written whole (a
    /// full pipe, a full disk): the caller counts it as missed.
    @discardableResult
    public func write(line: String) -> Bool {
        var text = line
        text.append("\n")
        let count = text.utf8.count
        let written = text.withCString { Glibc.write(fd, $0, count) }
        return written == count
    }
}

/// Why a log or metrics destination could not be opened: one line.
public struct OutputFileError: Error, Equatable, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "cannot open '\(path)' for writing: \(reason)" }
}
