#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import KVM

/// KVM's binary statistics file, parsed from bytes laid out as Linux lays them out
/// (`kvm_stats_header`, then `kvm_stats_desc` + name for each, then the u64 values).
@Suite struct KVMStatisticsTests {
    static func file(names: [String], values: [UInt64], nameSize: Int = 48, badOffsetFor: String? = nil) -> [UInt8] {
        func le(_ value: Int, _ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
        let descriptorOffset = 24 + 8, dataOffset = descriptorOffset + names.count * (16 + nameSize)
        var bytes = le(0, 4) + le(nameSize, 4) + le(names.count, 4) + le(24, 4) + le(descriptorOffset, 4) + le(dataOffset, 4)
        bytes += Array("kvm-1234".utf8)
        for (index, name) in names.enumerated() {
            let offset = name == badOffsetFor ? 3 : index * 8
            bytes += le(0, 4) + le(0, 2) + le(1, 2) + le(offset, 4) + le(0, 4)
            bytes += Array(name.utf8) + [UInt8](repeating: 0, count: nameSize - name.utf8.count)
        }
        for value in values { bytes += (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) } }
        return bytes
    }

    static func parse(_ bytes: [UInt8]) throws -> KVMStatistics {
        try KVMStatistics(fd: FileDescriptor(raw: open("/dev/null", O_RDONLY))) { buffer, offset in
            guard offset >= 0, offset < bytes.count else { return 0 }
            let count = min(buffer.count, bytes.count - offset)
            buffer.copyBytes(from: bytes[offset..<offset + count])
            return count
        }
    }

    @Test func namesAndValuesAreWhereTheDescriptorsSay() throws {
        let bytes = Self.file(names: ["halt_wait_ns", "exits", "halt_exits"], values: [1_500_000_000, 42, 7])
        let statistics = try Self.parse(bytes)
        #expect(statistics.names == ["halt_wait_ns", "exits", "halt_exits"])
        let data = Array(bytes[(bytes.count - 24)...])
        #expect(KVMStatistics.decode(data, fields: statistics.fields) == ["halt_wait_ns": 1_500_000_000, "exits": 42, "halt_exits": 7])
    }

    @Test func aMisplacedFieldIsSkippedAndAShortFileRefused() throws {
        let statistics = try Self.parse(Self.file(names: ["a", "b"], values: [1, 2], badOffsetFor: "b"))
        #expect(statistics.names == ["a"])
        #expect(throws: KVMError.self) { _ = try Self.parse(Array(Self.file(names: ["a"], values: [1]).prefix(30))) }
        #expect(throws: KVMError.self) { _ = try Self.parse(Self.file(names: [], values: [], nameSize: 0)) }
    }
}
