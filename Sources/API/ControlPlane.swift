import Dispatch
import Synchronization
import VMM

/// What the API drives: a machine being configured, then running. The API server can exist before
/// the machine does: until then its routes see `MachineResources`, and a start is handed to the
/// thread that builds and runs the machine (`waitForStart`), never done on the API's event loop.
public final class ControlPlane: Sendable {
    public enum Phase: Sendable, Equatable {
        case configuring
        /// A start was asked for; the machine is being built.
        case starting
        case running
    }

    private struct State {
        var phase: Phase = .configuring
        var resources: MachineResources
        var machine: (any MachineControl)?
    }

    private let state: Mutex<State>
    private let started = DispatchSemaphore(value: 0)

    public init(resources: MachineResources) { state = Mutex(State(resources: resources)) }

    /// A control plane for a machine that already runs.
    public convenience init(running machine: any MachineControl) {
        self.init(resources: MachineResources())
        attach(machine)
    }

    public var phase: Phase { state.withLock { $0.phase } }
    public var resources: MachineResources { state.withLock { $0.resources } }
    public var machine: (any MachineControl)? { state.withLock { $0.machine } }

    /// Changes the configuration through its setters; only before the start.
    public func configure(_ change: (inout MachineResources) throws(ResourcesError) -> Void) throws(ControlError) {
        try state.withLock { state throws(ControlError) in
            guard state.phase == .configuring else { throw .afterStart }
            do throws(ResourcesError) { try change(&state.resources) } catch { throw .invalid(error) }
        }
    }

    /// Records a change made to the running machine (PATCH /drives, PATCH /balloon/statistics)
    /// in the configuration that GET /vm/config answers.
    public func recordChange(_ change: (inout MachineResources) -> Void) {
        state.withLock { change(&$0.resources) }
    }

    /// Asks for the machine to be built and run (an API request, a config file): checks that the
    /// configuration is complete, then wakes the thread in `waitForStart`.
    public func requestStart() throws(ControlError) {
        try state.withLock { state throws(ControlError) in
            guard state.phase == .configuring else { throw .afterStart }
            do throws(ResourcesError) { _ = try state.resources.configuration() } catch { throw .invalid(error) }
            state.phase = .starting
        }
        started.signal()
    }

    /// Blocks the calling (VMM) thread until a start is asked for; returns the configuration then.
    public func waitForStart() -> MachineResources {
        started.wait()
        return resources
    }

    /// The machine now exists and runs.
    public func attach(_ machine: any MachineControl) {
        state.withLock {
            $0.machine = machine
            $0.phase = .running
        }
    }
}

/// Why the control plane refused: the phase is wrong, or a value is.
public enum ControlError: Error, Equatable, CustomStringConvertible {
    case beforeStart
    case afterStart
    case invalid(ResourcesError)

    /// Firecracker's own wording for the phase errors, which its clients match.
    public var description: String {
        switch self {
        case .beforeStart: "The requested operation is not supported before starting the microVM."
        case .afterStart: "The requested operation is not supported after starting the microVM."
        case let .invalid(error): error.description
        }
    }
}
