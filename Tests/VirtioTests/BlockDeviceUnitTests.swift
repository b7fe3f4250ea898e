import Foundation
import GuestMemory
import Testing
@testable import Virtio

/// virtio-blk on byte-array guest memory and a real image file: request parsing, the status
/// answers, and the bounds every guest value is checked against.
/// Each test writes an image of its own, removed when it ends.
@Suite final class BlockDeviceUnitTests {
    let memory: GuestMemory
    var driver: TestDriver
    let imagePath: String

    static let header: UInt64 = 0x20000
    static let data: UInt64 = 0x21000
    static let status: UInt64 = 0x30000

    init() throws {
        memory = try makeMemory()
        driver = TestDriver(memory: memory, size: 16)
        imagePath = FileManager.default.temporaryDirectory.appendingPathComponent("ebb-blk-unit-\(getpid())-\(UUID().uuidString).img").path
        try Data((0..<(64 * 512)).map { UInt8(truncatingIfNeeded: $0 / 512) }).write(to: URL(fileURLWithPath: imagePath))
    }

    deinit {
        unlink(imagePath)
    }

    func device(readOnly: Bool = false, serial: String? = nil) throws -> BlockDevice {
        let device = try BlockDevice(options: .init(path: imagePath, readOnly: readOnly, cache: .writeback, serial: serial))
        device.activate(features: device.offeredFeatures)
        return device
    }

    func writeHeader(type: UInt32, sector: UInt64) throws {
        try memory.store(type, at: GuestAddress(Self.header))
        try memory.store(UInt32(0), at: GuestAddress(Self.header + 4))
        try memory.store(sector, at: GuestAddress(Self.header + 8))
        try memory.store(UInt8(0xff), at: GuestAddress(Self.status))
    }

    /// Runs the queue once; the status byte and the used entry's length.
    func submit(_ device: BlockDevice, _ descriptors: [(UInt64, UInt32, Bool)]) throws -> (status: UInt8, length: UInt32) {
        // Fresh rings each time: the request is the chain at slot 0.
        try driver.clear()
        driver.availIndex = 0
        for (index, (address, length, writable)) in descriptors.enumerated() {
            let last = index == descriptors.count - 1
            try driver.setDescriptor(UInt16(index), address: address, length: length,
                                     flags: (writable ? 2 : 0) | (last ? 0 : 1), next: UInt16(index + 1))
        }
        try driver.makeAvailable(0)
        var queue = try SplitQueue(driver.configuration, maximumSize: 16, memory: memory)
        _ = try device.process(queueIndex: 0, queue: &queue, memory: memory)
        let used = try driver.usedEntry(0)
        return (try memory.load(UInt8.self, at: GuestAddress(Self.status)), used.length)
    }

    @Test func readScattersSectorsIntoGuestBuffers() throws {
        let disk = try device()
        try writeHeader(type: 0, sector: 3)
        // The header split over two descriptors, the data over two: still one request.
        let result = try submit(disk, [(Self.header, 8, false), (Self.header + 8, 8, false),
                                       (Self.data, 512, true), (Self.data + 4096, 512, true), (Self.status, 1, true)])
        #expect(result.status == 0)
        #expect(result.length == 1025)
        #expect(try memory.read(at: GuestAddress(Self.data), count: 512).allSatisfy { $0 == 3 })
        #expect(try memory.read(at: GuestAddress(Self.data + 4096), count: 512).allSatisfy { $0 == 4 })
    }

    @Test func writeGathersAndReadOnlyRefuses() throws {
        try memory.write([UInt8](repeating: 0x77, count: 1024), at: GuestAddress(Self.data))
        try writeHeader(type: 1, sector: 10)
        let refused = try submit(try device(readOnly: true), [(Self.header, 16, false), (Self.data, 1024, false), (Self.status, 1, true)])
        #expect(refused.status == BlockStatus.ioError.rawValue)
        try writeHeader(type: 1, sector: 10)
        let written = try submit(try device(), [(Self.header, 16, false), (Self.data, 1024, false), (Self.status, 1, true)])
        #expect(written.status == 0)
        #expect(written.length == 1)
        let image = [UInt8](try Data(contentsOf: URL(fileURLWithPath: imagePath)))
        #expect(image[(10 * 512)..<(12 * 512)].allSatisfy { $0 == 0x77 })
        #expect(image[12 * 512] == 12)
    }

    @Test func statusMustBeDeviceWritable() throws {
        try writeHeader(type: 0, sector: 0)
        #expect(throws: QueueError.self) {
            _ = try submit(try device(), [(Self.header, 16, false), (Self.data, 512, true), (Self.status, 1, false)])
        }
    }

    @Test func badRequestsAreAnsweredNotFatal() throws {
        let disk = try device()
        let cases: [(type: UInt32, sector: UInt64, data: [(UInt64, UInt32, Bool)], status: BlockStatus)] = [
            (0, 64, [(Self.data, 512, true)], .ioError),               // past the end
            (0, 63, [(Self.data, 1024, true)], .ioError),              // straddles the end
            (0, UInt64.max, [(Self.data, 512, true)], .ioError),       // sector * 512 overflows
            (0, 0, [(Self.data, 100, true)], .ioError),                // not whole sectors
            (0, 0, [(Self.data, 512, false)], .ioError),               // read into a readable buffer
            (1, 0, [(Self.data, 512, true)], .ioError),                // write from a writable buffer
            (0x55, 0, [], .unsupported),                               // unknown type
        ]
        for bad in cases {
            try writeHeader(type: bad.type, sector: bad.sector)
            let result = try submit(disk, [(Self.header, 16, false)] + bad.data + [(Self.status, 1, true)])
            #expect(result.status == bad.status.rawValue, "type \(bad.type) sector \(bad.sector)")
        }
        // A header shorter than 16 bytes.
        try writeHeader(type: 0, sector: 0)
        #expect(try submit(disk, [(Self.header, 8, false), (Self.status, 1, true)]).status == BlockStatus.ioError.rawValue)
        #expect(disk.counters.ioErrors == 7)
        #expect(disk.counters.unsupported == 1)
    }

    @Test func getIDWritesTheSerialPaddedAndTruncated() throws {
        let disk = try device(serial: "serial-0123456789abcdef-too-long")
        try writeHeader(type: 8, sector: 0)
        let result = try submit(disk, [(Self.header, 16, false), (Self.data, 20, true), (Self.status, 1, true)])
        #expect(result.status == 0)
        #expect(result.length == 21)
        #expect(String(decoding: try memory.read(at: GuestAddress(Self.data), count: 20), as: UTF8.self) == "serial-0123456789abc")
    }

    @Test func rangeArithmeticCannotOverflow() {
        #expect(BlockRequest.byteRange(sector: 0, bytes: 512, sectorCount: 1)! == (0, 512))
        #expect(BlockRequest.byteRange(sector: 1, bytes: 512, sectorCount: 1) == nil)
        #expect(BlockRequest.byteRange(sector: UInt64.max, bytes: 512, sectorCount: UInt64.max / 512) == nil)
        #expect(BlockRequest.byteRange(sector: 2, bytes: UInt64.max - 511, sectorCount: UInt64.max / 512) == nil)
        #expect(BlockRequest.byteRange(sector: 0, bytes: 513, sectorCount: 8) == nil)
    }

    @Test func configSpaceAnnouncesCapacityAndLimits() throws {
        let disk = try device()
        let config = disk.readConfig(offset: 0, count: 60)
        func value(_ offset: Int, _ count: Int) -> UInt64 {
            config[offset..<offset + count].enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        }
        #expect(value(0, 8) == 64)
        #expect(value(12, 4) == UInt64(BlockLimits.segmentsPerRequest))
        #expect(value(20, 4) == 512)
        #expect(value(40, 4) == UInt64(BlockLimits.rangesPerRequest))
        #expect(disk.readConfig(offset: 1000, count: 4) == [0, 0, 0, 0])
        #expect(disk.offeredFeatures & BlockFeature.readOnly == 0)
    }

    @Test func readOnlyDiskOffersROAndNoDiscard() throws {
        let disk = try device(readOnly: true)
        #expect(disk.offeredFeatures & (BlockFeature.readOnly | BlockFeature.discard | BlockFeature.writeZeroes) == BlockFeature.readOnly)
    }

    /// The image is locked as QEMU locks it: a writer excludes everyone, readers share.
    @Test func imageLocksExcludeASecondWriter() throws {
        try withExtendedLifetime(try device()) {
            #expect(throws: DiskImageError.self) { _ = try device() }
            #expect(throws: DiskImageError.self) { _ = try device(readOnly: true) }
        }
        try withExtendedLifetime(try [device(readOnly: true), device(readOnly: true)]) {
            #expect(throws: DiskImageError.self) { _ = try device() }
        }
    }
}
