#if canImport(Glibc)
import Glibc
#endif
import CKVM

/// An eventfd: the kernel-side doorbell KVM rings for a queue notification (`KVM_IOEVENTFD`) and
/// that Ebb rings to inject an interrupt (`KVM_IRQFD`), with no exit to a vCPU thread.
final class EventNotifier: Sendable {
    let fd: Int32

    init() throws {
        let fd = eventfd(0, EBB_EFD_CLOEXEC | EBB_EFD_NONBLOCK)
        guard fd >= 0 else { throw SystemError(operation: "eventfd", errno: errno) }
        self.fd = fd
    }

    deinit { close(fd) }

    func signal() {
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }

    /// Clears the counter; true if it had been signalled.
    @discardableResult
    func consume() -> Bool {
        var value: UInt64 = 0
        return read(fd, &value, 8) == 8
    }
}
