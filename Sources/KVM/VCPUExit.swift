import CKVM

/// Why `KVM_RUN` returned, decoded from the shared `kvm_run` page.
public enum VCPUExit {
    /// A port access. `data` is the `kvm_run` buffer holding `count` items of `size` bytes, already
    /// bounds-checked against the mapping: write them out, or fill them in for a read.
    case io(port: UInt16, size: Int, isWrite: Bool, data: UnsafeMutableRawBufferPointer)
    /// An MMIO access outside guest RAM; `data` holds `length` bytes (1...8).
    case mmio(address: UInt64, isWrite: Bool, data: UnsafeMutableRawBufferPointer)
    case halt
    /// Triple fault or an equivalent: the CPU would reset.
    case shutdown
    case systemEvent(type: UInt32)
    /// KVM could not go on; `instruction` holds the bytes KVM reports, when it reports them.
    case internalError(suberror: UInt32, data: [UInt64], instruction: [UInt8])
    case failedEntry(reason: UInt64)
    /// `KVM_RUN` returned EINTR or `immediate_exit` was set: a signal asked the thread to look up.
    case interrupted
    case unhandled(reason: UInt32)
}

extension VCPUExit: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .io(port, size, isWrite, _): return "io \(isWrite ? "write" : "read") port 0x\(String(port, radix: 16)) size \(size)"
        case let .mmio(address, isWrite, data): return "mmio \(isWrite ? "write" : "read") 0x\(String(address, radix: 16)) size \(data.count)"
        case .halt: return "hlt"
        case .shutdown: return "shutdown (triple fault)"
        case let .systemEvent(type): return "system event \(type)"
        case let .internalError(suberror, data, _):
            return "internal error, suberror \(suberror), data [\(data.map { "0x" + String($0, radix: 16) }.joined(separator: " "))]"
        case let .failedEntry(reason): return "entry failed, hardware reason 0x\(String(reason, radix: 16))"
        case .interrupted: return "interrupted"
        case let .unhandled(reason): return "exit reason \(reason)"
        }
    }
}
