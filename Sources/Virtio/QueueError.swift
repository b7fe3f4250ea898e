/// Ways a driver can break a virtqueue. Any of them marks the device DEVICE_NEEDS_RESET: the guest
/// must reset it, and nothing else in the VMM is affected.
public enum QueueError: Error, Equatable, CustomStringConvertible {
    case notPowerOfTwo(size: UInt16)
    case sizeTooLarge(size: UInt16, maximum: UInt16)
    case misaligned(ring: String, address: UInt64)
    case ringOutsideRAM(ring: String, address: UInt64)
    case availIndexTooFarAhead(pending: UInt16, size: UInt16)
    case headOutOfRange(index: UInt16, size: UInt16)
    case nextOutOfRange(index: UInt16, size: UInt16)
    case chainTooLong(limit: Int)
    case chainTooLarge(totalBytes: UInt64)
    case indirectNotNegotiated
    case nestedIndirect
    case badIndirectTable(length: UInt32)
    case bufferOutsideRAM(address: UInt64, length: UInt32)
    case wrongDirection(String)
    case malformedRequest(String)

    public var description: String {
        switch self {
        case let .notPowerOfTwo(size): return "queue size \(size) is not a power of two"
        case let .sizeTooLarge(size, maximum): return "queue size \(size) exceeds the maximum \(maximum)"
        case let .misaligned(ring, address): return "\(ring) ring at 0x\(String(address, radix: 16)) is misaligned"
        case let .ringOutsideRAM(ring, address): return "\(ring) ring at 0x\(String(address, radix: 16)) is outside guest RAM"
        case let .availIndexTooFarAhead(pending, size): return "avail index is \(pending) entries ahead of a \(size)-entry queue"
        case let .headOutOfRange(index, size): return "chain head \(index) is outside a \(size)-entry table"
        case let .nextOutOfRange(index, size): return "descriptor next \(index) is outside a \(size)-entry table"
        case let .chainTooLong(limit): return "descriptor chain longer than \(limit) (a loop?)"
        case let .chainTooLarge(total): return "descriptor chain of \(total) bytes exceeds 4 GiB"
        case .indirectNotNegotiated: return "indirect descriptor without VIRTIO_F_INDIRECT_DESC"
        case .nestedIndirect: return "indirect descriptor inside an indirect table"
        case let .badIndirectTable(length): return "indirect table of \(length) bytes (a multiple of 16, at most \(SplitQueue.maximumIndirectEntries) entries)"
        case let .bufferOutsideRAM(address, length): return "buffer 0x\(String(address, radix: 16)) (+\(length)) is outside guest RAM"
        case let .wrongDirection(what): return what
        case let .malformedRequest(what): return what
        }
    }
}
