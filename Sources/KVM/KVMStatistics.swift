#if canImport(Glibc)
import Glibc
#endif
import CKVM

/// KVM's binary statistics of one vCPU or VM (`KVM_GET_STATS_FD`): the names and places are read
/// once, the values with one `pread` each time. The file's layout (Linux's `kvm_stats_header` and
/// `kvm_stats_desc`) is checked before use: a field outside the file is skipped, never read.
public final class KVMStatistics: Sendable {
    /// One statistic: where its first (or only) u64 value lies in the data block.
    struct Field: Sendable, Equatable {
        let name: String
        let offset: Int
    }

    let fd: FileDescriptor
    let dataOffset: Int
    let dataBytes: Int
    let fields: [Field]

    /// Opens the statistics of the VM or vCPU behind `owner`.
    convenience init(owner: FileDescriptor) throws {
        let raw = try owner.ioctl("KVM_GET_STATS_FD", EBB_KVM_GET_STATS_FD)
        let fd = FileDescriptor(raw: raw)
        try self.init(fd: fd) { buffer, offset in pread(raw, buffer.baseAddress, buffer.count, offset) }
    }

    /// Reads the layout through `read(buffer, offset)` (pread's contract), so that a test can hand
    /// it bytes of its own.
    init(fd: FileDescriptor, read: (UnsafeMutableRawBufferPointer, Int) -> Int) throws {
        func bytes(at offset: Int, count: Int) throws -> [UInt8] {
            var result = [UInt8](repeating: 0, count: count)
            let got = result.withUnsafeMutableBytes { read($0, offset) }
            guard got == count else { throw KVMError("KVM_GET_STATS_FD: " + "short read of \(count) bytes at \(offset)", errno: EIO) }
            return result
        }
        func u32(_ bytes: [UInt8], _ at: Int) -> Int {
            Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24
        }
        // flags, name_size, num_desc, id_offset, desc_offset, data_offset
        let header = try bytes(at: 0, count: 24)
        let nameSize = u32(header, 4), count = u32(header, 8), descriptorOffset = u32(header, 16), dataOffset = u32(header, 20)
        guard nameSize > 0, nameSize <= 256, count <= 4096 else { throw KVMError("KVM_GET_STATS_FD: " + "header: name_size \(nameSize), num_desc \(count)", errno: EIO) }
        // flags, exponent, size, offset, bucket_size, then the name.
        let descriptorBytes = 16 + nameSize
        let table = try bytes(at: descriptorOffset, count: descriptorBytes * count)
        var fields: [Field] = []
        var end = 0
        for index in 0..<count {
            let base = index * descriptorBytes
            let size = Int(table[base + 6]) | Int(table[base + 7]) << 8
            let offset = u32(table, base + 8)
            let nameBytes = table[(base + 16)..<(base + descriptorBytes)].prefix { $0 != 0 }
            guard size >= 1, offset % 8 == 0, offset <= 1 << 20 else { continue }
            fields.append(Field(name: String(decoding: nameBytes, as: UTF8.self), offset: offset))
            end = max(end, offset + 8)
        }
        self.fd = fd
        self.dataOffset = dataOffset
        dataBytes = end
        self.fields = fields
    }

    public var names: [String] { fields.map(\.name) }

    /// Every statistic's (first) value now.
    public func values() throws -> [String: UInt64] {
        var data = [UInt8](repeating: 0, count: dataBytes)
        let got = data.withUnsafeMutableBytes { pread(fd.raw, $0.baseAddress, $0.count, dataOffset) }
        guard got == dataBytes else { throw KVMError("KVM_GET_STATS_FD: " + "short read of the values", errno: EIO) }
        return Self.decode(data, fields: fields)
    }

    static func decode(_ data: [UInt8], fields: [Field]) -> [String: UInt64] {
        var result: [String: UInt64] = [:]
        for field in fields where field.offset + 8 <= data.count {
            result[field.name] = data[field.offset..<field.offset + 8].enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        }
        return result
    }
}
