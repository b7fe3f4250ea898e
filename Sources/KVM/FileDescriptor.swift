#if canImport(Glibc)
import Glibc
#endif
import CKVM

/// Owns one file descriptor and closes it exactly once.
///
/// A class rather than a `~Copyable` struct because VM and vCPU handles are shared by the vCPU
/// threads, the device threads and the run loop; the descriptor itself never changes.
public final class FileDescriptor: Sendable {
    public let raw: Int32

    public init(raw: Int32) { self.raw = raw }

    deinit { close(raw) }

    func ioctl(_ name: @autoclosure () -> String, _ request: UInt, _ argument: UInt = 0) throws -> Int32 {
        try check(name()) { ebb_ioctl_value(raw, request, argument) }
    }

    func ioctl(_ name: @autoclosure () -> String, _ request: UInt, _ pointer: UnsafeMutableRawPointer) throws -> Int32 {
        try check(name()) { ebb_ioctl_ptr(raw, request, pointer) }
    }

    /// An ioctl whose argument is a struct passed by pointer, in and/or out.
    func ioctl<T>(_ name: @autoclosure () -> String, _ request: UInt, _ value: inout T) throws {
        _ = try withUnsafeMutableBytes(of: &value) { buffer in
            try check(name()) { ebb_ioctl_ptr(raw, request, buffer.baseAddress) }
        }
    }
}
