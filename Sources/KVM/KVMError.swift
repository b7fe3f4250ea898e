#if canImport(Glibc)
import Glibc
#endif

/// A failed KVM operation: which one, and the errno the kernel gave.
public struct KVMError: Error, CustomStringConvertible, Equatable {
    public let operation: String
    public let errno: Int32

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String {
        "\(operation) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Runs a system call, retrying on EINTR, and turns -1 into a `KVMError` naming `operation`.
@discardableResult
func check(_ operation: @autoclosure () -> String, _ call: () -> Int32) throws -> Int32 {
    while true {
        let result = call()
        if result >= 0 { return result }
        let error = errno
        if error == EINTR { continue }
        throw KVMError(operation(), errno: error)
    }
}
