/// How a guest run ended, and the process exit code `ebb` reports for it (see the README).
public enum MachineExit: Equatable, Sendable, CustomStringConvertible {
    /// The guest powered off through ACPI.
    case powerOff
    /// The user typed Ctrl-A x on the console.
    case userQuit
    /// The guest asked for a reset (i8042 or the ACPI reset register).
    case reset
    /// A vCPU triple-faulted: the guest crashed.
    case tripleFault(vcpu: UInt32)
    /// A vCPU stopped on something KVM or Ebb could not handle; `reason` says what.
    case vcpuFault(vcpu: UInt32, reason: String)
    /// Ebb received a host signal (SIGINT, SIGTERM, SIGHUP).
    case hostSignal(Int32)

    public var exitCode: Int32 {
        switch self {
        case .powerOff, .userQuit: return 0
        case .vcpuFault: return 1
        case .reset: return 2
        case .tripleFault: return 3
        case let .hostSignal(number): return 128 + number
        }
    }

    public var description: String {
        switch self {
        case .powerOff: return "guest powered off"
        case .userQuit: return "stopped from the console (Ctrl-A x)"
        case .reset: return "guest requested a reset"
        case let .tripleFault(vcpu): return "guest crashed: triple fault on vCPU \(vcpu)"
        case let .vcpuFault(vcpu, reason): return "vCPU \(vcpu) stopped: \(reason)"
        case let .hostSignal(number): return "stopped by signal \(number)"
        }
    }
}
