#if canImport(Glibc)
import Glibc
#endif
import CKVM

/// Why `/dev/kvm` could not be used, worded for the person at the terminal.
public enum KVMUnavailable: Error, CustomStringConvertible, Equatable {
    case missing(path: String)
    case permissionDenied(path: String)
    case notKVM(path: String, errno: Int32)
    case apiVersion(Int32)

    public var description: String {
        switch self {
        case let .missing(path):
            return "\(path) does not exist: this host has no KVM (load kvm_intel or kvm_amd, or enable nested virtualization)"
        case let .permissionDenied(path):
            return "no permission to open \(path): add yourself to the 'kvm' group or run as root"
        case let .notKVM(path, errno):
            return "\(path) is not a usable KVM device: \(String(cString: strerror(errno))) (errno \(errno))"
        case let .apiVersion(version):
            return "KVM API version \(version) is not the stable version 12"
        }
    }
}

/// The KVM system handle (`/dev/kvm`): capability queries and VM creation.
public final class KVMDevice: Sendable {
    public static let defaultPath = "/dev/kvm"
    let fd: FileDescriptor

    public init(path: String = KVMDevice.defaultPath) throws {
        let raw = open(path, O_RDWR | O_CLOEXEC)
        guard raw >= 0 else {
            let error = errno
            switch error {
            case ENOENT, ENOTDIR: throw KVMUnavailable.missing(path: path)
            case EACCES, EPERM: throw KVMUnavailable.permissionDenied(path: path)
            default: throw KVMUnavailable.notKVM(path: path, errno: error)
            }
        }
        fd = FileDescriptor(raw: raw)
        let version: Int32
        do {
            version = try fd.ioctl("KVM_GET_API_VERSION", EBB_KVM_GET_API_VERSION)
        } catch let error as KVMError {
            throw KVMUnavailable.notKVM(path: path, errno: error.errno)
        }
        guard version == KVM_API_VERSION else { throw KVMUnavailable.apiVersion(version) }
    }

    /// `KVM_CHECK_EXTENSION`: 0 when absent, otherwise a capability-specific positive value.
    public func checkExtension(_ capability: Int32) -> Int32 {
        (try? fd.ioctl("KVM_CHECK_EXTENSION", EBB_KVM_CHECK_EXTENSION, UInt(capability))) ?? 0
    }

    public func vcpuMmapSize() throws -> Int {
        Int(try fd.ioctl("KVM_GET_VCPU_MMAP_SIZE", EBB_KVM_GET_VCPU_MMAP_SIZE))
    }

    /// The CPUID leaves this KVM can expose (`KVM_GET_SUPPORTED_CPUID`).
    public func supportedCPUID() throws -> [kvm_cpuid_entry2] {
        try CPUIDTable.withBuffer(capacity: CPUIDTable.maxEntries) { header in
            _ = try fd.ioctl("KVM_GET_SUPPORTED_CPUID", EBB_KVM_GET_SUPPORTED_CPUID, header)
            return CPUIDTable.entries(in: header)
        }
    }

    public func createVM() throws -> VirtualMachine {
        let raw = try fd.ioctl("KVM_CREATE_VM", EBB_KVM_CREATE_VM, 0)
        return VirtualMachine(fd: FileDescriptor(raw: raw), runMmapSize: try vcpuMmapSize())
    }

}

/// The variable-length `struct kvm_cpuid2` as a raw buffer, since Swift cannot declare a flexible array.
enum CPUIDTable {
    static let maxEntries = 256
    static let headerBytes = MemoryLayout<kvm_cpuid2>.size
    static let entryBytes = MemoryLayout<kvm_cpuid_entry2>.stride

    static func withBuffer<R>(capacity: Int, _ body: (UnsafeMutableRawPointer) throws -> R) rethrows -> R {
        let bytes = headerBytes + capacity * entryBytes
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        buffer.storeBytes(of: UInt32(capacity), as: UInt32.self)
        return try body(buffer)
    }

    static func entries(in header: UnsafeMutableRawPointer) -> [kvm_cpuid_entry2] {
        let count = min(Int(header.load(as: UInt32.self)), maxEntries)
        return (0..<count).map {
            header.load(fromByteOffset: headerBytes + $0 * entryBytes, as: kvm_cpuid_entry2.self)
        }
    }

    static func withTable<R>(_ entries: [kvm_cpuid_entry2], _ body: (UnsafeMutableRawPointer) throws -> R) rethrows -> R {
        try withBuffer(capacity: entries.count) { header in
            for (index, entry) in entries.enumerated() {
                header.storeBytes(of: entry, toByteOffset: headerBytes + index * entryBytes, as: kvm_cpuid_entry2.self)
            }
            return try body(header)
        }
    }
}
