import KVM

/// How the vCPUs spent their time, from KVM's own statistics: a signal from outside the guest of
/// how busy it is (nothing runs in the guest to ask).
public struct VCPUTime: Sendable, Equatable {
    /// Each vCPU's time waiting in HLT (KVM's `halt_wait_ns`), in order; nil where KVM has no
    /// binary statistics.
    public let haltedNanoseconds: [UInt64]?
    /// Each vCPU's time KVM spent polling for a wake-up before it waits (`halt_poll_success_ns`
    /// + `halt_poll_fail_ns`): the guest had halted, KVM chose to spin. Nil where KVM has no such
    /// statistics.
    public let haltPollingNanoseconds: [UInt64]?
    /// Exits to KVM of all vCPUs together (`exits`).
    public let exits: UInt64?
}

extension Machine {
    public func vcpuTime() -> VCPUTime {
        let statistics = vcpuStatistics.map { try? $0?.values() }
        guard statistics.allSatisfy({ $0 != nil }) else { return VCPUTime(haltedNanoseconds: nil, haltPollingNanoseconds: nil, exits: nil) }
        let values = statistics.compactMap { $0 }
        let halted = values.map { $0["halt_wait_ns"] }
        let exits = values.map { $0["exits"] }
        let polling = values.map { stats in stats["halt_poll_success_ns"].flatMap { success in stats["halt_poll_fail_ns"].map { success + $0 } } }
        return VCPUTime(haltedNanoseconds: halted.allSatisfy { $0 != nil } ? halted.compactMap { $0 } : nil,
                        haltPollingNanoseconds: polling.allSatisfy { $0 != nil } ? polling.compactMap { $0 } : nil,
                        exits: exits.allSatisfy { $0 != nil } ? exits.compactMap { $0 }.reduce(0, +) : nil)
    }
}
