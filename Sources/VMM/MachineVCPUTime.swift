import KVM

/// How the vCPUs spent their time, from KVM's own statistics: a signal from outside the guest of
/// how busy it is (nothing runs in the guest to ask).
public struct VCPUTime: Sendable, Equatable {
    /// Each vCPU's time waiting in HLT (KVM's `halt_wait_ns`), in order; nil where KVM has no
    /// binary statistics.
    public let haltedNanoseconds: [UInt64]?
    /// Exits to KVM of all vCPUs together (`exits`).
    public let exits: UInt64?
}

extension Machine {
    public func vcpuTime() -> VCPUTime {
        let statistics = vcpus.map { try? $0.statistics().values() }
        guard statistics.allSatisfy({ $0 != nil }) else { return VCPUTime(haltedNanoseconds: nil, exits: nil) }
        let values = statistics.compactMap { $0 }
        let halted = values.map { $0["halt_wait_ns"] }
        let exits = values.map { $0["exits"] }
        return VCPUTime(haltedNanoseconds: halted.allSatisfy { $0 != nil } ? halted.compactMap { $0 } : nil,
                        exits: exits.allSatisfy { $0 != nil } ? exits.compactMap { $0 }.reduce(0, +) : nil)
    }
}
