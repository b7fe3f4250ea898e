/// Why a guest-memory operation failed. Guest addresses come from a hostile guest, so every
/// out-of-range access is an ordinary error, never a crash.
public enum GuestMemoryError: Error, Equatable, CustomStringConvertible {
    case outOfRange(address: UInt64, length: UInt64)
    case mapFailed(errno: Int32, bytes: UInt64)
    case invalidLayout(String)

    public var description: String {
        switch self {
        case let .outOfRange(address, length):
            return "guest range 0x\(String(address, radix: 16)) (+0x\(String(length, radix: 16))) is outside guest RAM"
        case let .mapFailed(errno, bytes):
            return "mmap of \(bytes) bytes of guest RAM failed: \(String(cString: strerror(errno))) (errno \(errno))"
        case let .invalidLayout(why):
            return "invalid guest memory layout: \(why)"
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
