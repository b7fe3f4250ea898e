import Synchronization
import VMM

/// The logger and the metrics of one Ebb process, as Firecracker's clients configure them (`PUT
/// /logger`, `PUT /metrics`, a config file, `--log-path`/`--metrics-path`), and the API's
/// request counters the metrics report. Each is configured once, as in Firecracker.
public final class Observability: Sendable {
    public let instanceID: String
    public let requests = APIRequestCounters()
    public let metrics: MetricsWriter
    private let logger = Mutex<LoggerSettings?>(nil)

    public init(control: ControlPlane, instanceID: String) {
        self.instanceID = instanceID
        metrics = MetricsWriter(control: control, requests: requests)
    }

    public var loggerSettings: LoggerSettings? { logger.withLock { $0 } }

    public func configureLogger(_ settings: LoggerSettings) throws(ObservabilityError) {
        try logger.withLock { current throws(ObservabilityError) in
            guard current == nil else { throw .loggerAlreadyConfigured }
            do throws(OutputFileError) { try Log.configure(settings, instanceID: instanceID) } catch { throw .cannotOpen("logger", error) }
            current = settings
        }
    }

    public func configureMetrics(path: String) throws(ObservabilityError) {
        do { try metrics.configure(path: path) } catch {
            switch error {
            case let .cannotOpen(reason): throw .cannotOpen("metrics", reason)
            case .alreadyConfigured: throw .metricsAlreadyConfigured
            }
        }
    }

    /// The config file's logger and metrics sections.
    public func configure(from file: ConfigFile) throws(ObservabilityError) {
        if let body = file.logger {
            do { try configureLogger(body.settings()) } catch let error as ObservabilityError { throw error } catch { throw .invalid("logger: \(error)") }
        }
        if let body = file.metrics { try configureMetrics(path: body.metricsPath) }
    }
}

public enum ObservabilityError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(String, OutputFileError)
    case loggerAlreadyConfigured
    case metricsAlreadyConfigured
    case invalid(String)

    public var description: String {
        switch self {
        case let .cannotOpen(what, error): "\(what): \(error)"
        case .loggerAlreadyConfigured: "the logger is already configured (it can be configured once)"
        case .metricsAlreadyConfigured: "metrics are already configured (they can be configured once)"
        case let .invalid(text): text
        }
    }
}
