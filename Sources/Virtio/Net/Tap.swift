import CKVM
import Glibc

/// Why a tap could not be had, in one line for the user.
public struct TapError: Error, CustomStringConvertible, Equatable {
    public let description: String
}

/// A tap device opened for one guest NIC: non-blocking, without packet information, with a
/// 12-byte virtio-net header before every frame in both directions (IFF_VNET_HDR), so the
/// guest's own header goes to the tap as it is and the tap's comes to the guest as it is.
public final class Tap: @unchecked Sendable {
    public let name: String
    let fd: Int32
    /// The interface's MTU (what the guest is told).
    public let mtu: UInt16
    /// Whether the tap takes checksum and segmentation offloads (TUNSETOFFLOAD).
    public let takesOffloads: Bool

    public init(name: String) throws(TapError) {
        guard !name.isEmpty, name.utf8.count < 16, !name.contains("/") else {
            throw TapError(description: "tap '\(name)': not an interface name (1 to 15 characters)")
        }
        // TUNSETIFF would create a tap that does not exist, one that vanishes with Ebb and that
        // nothing on the host has addressed or routed: say so instead.
        guard if_nametoindex(name) != 0 else {
            throw TapError(description: "tap '\(name)': no such network interface (create it: ip tuntap add dev \(name) mode tap)")
        }
        let fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            throw TapError(description: "tap '\(name)': cannot open /dev/net/tun: \(String(cString: strerror(errno)))")
        }
        guard ebb_tap_attach(fd, name, Int32(NetHeader.bytes)) == 0 else {
            let code = errno
            close(fd)
            switch code {
            case EBUSY: throw TapError(description: "tap '\(name)': in use by another process")
            case EPERM, EACCES: throw TapError(description: "tap '\(name)': permission denied (needs CAP_NET_ADMIN, or a tap created with user= for this user)")
            case EINVAL: throw TapError(description: "tap '\(name)': not a tap device")
            default: throw TapError(description: "tap '\(name)': TUNSETIFF: \(String(cString: strerror(code)))")
            }
        }
        self.name = name
        self.fd = fd
        let mtu = ebb_interface_mtu(name)
        self.mtu = mtu >= 68 && mtu <= 65535 ? UInt16(mtu) : 1500
        takesOffloads = ebb_tap_set_offload(fd, EBB_TUN_F_CSUM | EBB_TUN_F_TSO4 | EBB_TUN_F_TSO6) == 0
        // Until a driver asks for them, the tap hands over only whole, checksummed frames.
        _ = ebb_tap_set_offload(fd, 0)
    }

    deinit { close(fd) }

    /// The file descriptor the device's thread waits on.
    public var pollDescriptor: Int32 { fd }

    /// What the tap may hand the guest: the driver's receive offloads (GUEST_CSUM, GUEST_TSO4/6).
    func setOffloads(forDriverFeatures features: UInt64) {
        var flags: UInt32 = 0
        if features & NetFeature.guestCsum != 0 {
            flags |= EBB_TUN_F_CSUM
            if features & NetFeature.guestTSO4 != 0 { flags |= EBB_TUN_F_TSO4 }
            if features & NetFeature.guestTSO6 != 0 { flags |= EBB_TUN_F_TSO6 }
        }
        _ = ebb_tap_set_offload(fd, flags)
    }

    /// The most buffers one read or write takes (the kernel's UIO_MAXIOV): a frame meeting more
    /// is cut short there.
    static let mostVectors = 1024

    /// One frame into the first `count` of `vectors`: its length, nil when none is waiting, or
    /// an errno.
    func receive(into vectors: [iovec], count: Int) -> Result<Int, TapIOError>? {
        let count = min(count, vectors.count, Self.mostVectors)
        while true {
            let read = vectors.withUnsafeBufferPointer { readv(fd, $0.baseAddress, Int32(count)) }
            if read >= 0 { return .success(read) }
            if errno == EINTR { continue }
            if errno == EAGAIN { return nil }
            return .failure(TapIOError(errno: errno))
        }
    }

    /// One frame from `vectors`; false when the tap refused it (it then is dropped).
    func send(_ vectors: [iovec]) -> Bool {
        let count = min(vectors.count, Self.mostVectors)
        while true {
            let written = vectors.withUnsafeBufferPointer { writev(fd, $0.baseAddress, Int32(count)) }
            if written >= 0 { return true }
            if errno == EINTR { continue }
            return false
        }
    }
}

struct TapIOError: Error {
    let errno: Int32
}
