import CKVM
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Firecracker's log levels, most severe first: a line is written when its level is at or above
/// the configured one (Info writes errors, warnings and information).
public enum LogLevel: Int, Sendable, Comparable, CaseIterable {
    case error = 1, warning, info, debug, trace

    /// Firecracker's names for `level`, matched case-insensitively; "Off" is nil, as no level.
    public static func parse(_ name: String) -> LogLevel?? {
        switch name.lowercased() {
        case "off": .some(nil)
        case "error": .error
        case "warning", "warn": .warning
        case "info": .info
        case "debug": .debug
        case "trace": .trace
        default: nil
        }
    }

    /// How a line shows its level (`show_level`), as Firecracker's do.
    var label: String {
        switch self {
        case .error: "ERROR"
        case .warning: "WARN"
        case .info: "INFO"
        case .debug: "DEBUG"
        case .trace: "TRACE"
        }
    }

    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// What the logger writes and where (Firecracker's `PUT /logger` and `--log-path`/`--level`).
public struct LoggerSettings: Sendable, Equatable {
    public var path: String
    /// nil: "Off", nothing is written.
    public var level: LogLevel? = .info
    public var showLevel = false
    public var showOrigin = false

    public init(path: String, level: LogLevel? = .info, showLevel: Bool = false, showOrigin: Bool = false) {
        self.path = path
        self.level = level
        self.showLevel = showLevel
        self.showOrigin = showOrigin
    }
}

/// Ebb's log: every `report` goes to stderr, and once a logger is configured also to its file or
/// FIFO, one line each in Firecracker's shape: `<UTC time> [<id>:<thread>(:LEVEL)(:file:line)] text`.
public enum Log {
    private struct Destination {
        let file: OutputFile
        let settings: LoggerSettings
        let instanceID: String
    }

    private static let destination = Mutex<Destination?>(nil)
    private static let missed = Atomic<UInt64>(0)

    /// Opens the logger's destination; every line from now on goes there too.
    public static func configure(_ settings: LoggerSettings, instanceID: String) throws(OutputFileError) {
        let file = try OutputFile(path: settings.path)
        destination.withLock { $0 = Destination(file: file, settings: settings, instanceID: instanceID) }
    }

    /// Lines that could not be written (Firecracker's `logger.missed_log_count`).
    public static var missedLines: UInt64 { missed.load(ordering: .relaxed) }

    /// Whether a line of `level` would be written anywhere (a message costly to build is not).
    static func accepts(_ level: LogLevel) -> Bool {
        destination.withLock { destination in destination?.settings.level.map { level <= $0 } ?? false }
    }

    static func write(_ message: String, level: LogLevel, file: String, line: Int) {
        destination.withLock { destination in
            guard let destination, let configured = destination.settings.level, level <= configured else { return }
            var prefix = "\(destination.instanceID):\(currentThreadName())"
            if destination.settings.showLevel { prefix += ":\(level.label)" }
            if destination.settings.showOrigin { prefix += ":\(file):\(line)" }
            if !destination.file.write(line: "\(utcTimestamp()) [\(prefix)] \(message)") {
                missed.add(1, ordering: .relaxed)
            }
        }
    }

    /// The calling thread's role as `ThreadRegistry` knows it ("main", "vcpu0", "api", ...).
    static func currentThreadName() -> String {
        let id = ebb_gettid()
        return ThreadRegistry.threads.first { $0.threadID == id }.map { $0.role.description.replacingSpaces() } ?? "thread\(id)"
    }

    /// "2026-12-02T13:58:01.123456789", UTC, as Firecracker stamps its lines.
    static func utcTimestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { String(value).leftPadded(to: 2) }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))."
            + String(now.tv_nsec).leftPadded(to: 9)
    }
}

private extension String {
    func replacingSpaces() -> String { String(map { $0 == " " ? "_" : $0 }) }
}
