import ByteOrder
import Glibc
import GuestMemory
import Seccomp

/// virtio-blk (device id 2): a disk backed by a raw image on the host. Requests are served on the
/// device's own thread, straight between the image and guest memory (`preadv`/`pwritev` on the
/// guest's buffers, no copy); FLUSH is `fdatasync`, DISCARD and WRITE_ZEROES are `fallocate`.
///
/// Called only by `VirtioMMIOTransport`, which owns it, under its lock (see `VirtioDevice`).
public final class BlockDevice: VirtioDevice {
    public struct Options: Sendable, Equatable {
        public var path: String
        public var readOnly: Bool
        public var cache: DiskCache
        /// What GET_ID answers (at most 20 bytes); none: zeros, as QEMU without `serial=`.
        public var serial: String?

        public init(path: String, readOnly: Bool = false, cache: DiskCache = .none, serial: String? = nil) {
            self.path = path
            self.readOnly = readOnly
            self.cache = cache
            self.serial = serial
        }
    }

    /// What the device has done, for the summary and the tests.
    public struct Counters: Sendable, Equatable {
        public var reads: UInt64 = 0
        public var writes: UInt64 = 0
        public var bytesRead: UInt64 = 0
        public var bytesWritten: UInt64 = 0
        public var flushes: UInt64 = 0
        public var discards: UInt64 = 0
        public var writeZeroes: UInt64 = 0
        /// Requests answered IOERR (bad requests and host I/O errors) and UNSUPP.
        public var ioErrors: UInt64 = 0
        public var unsupported: UInt64 = 0

        public init() {}
    }

    public static let id: UInt32 = 2

    public private(set) var options: Options
    public private(set) var image: DiskImage
    public let offeredFeatures: UInt64
    public private(set) var counters = Counters()
    private var negotiated: UInt64 = 0
    private let serial: [UInt8]

    public var name: String { "virtio-blk '\(options.path)'" }
    public var deviceID: UInt32 { Self.id }
    public func queueCount(features: UInt64) -> Int { 1 }
    public func maximumQueueSize(queue index: Int) -> UInt16 { BlockLimits.queueSize }

    public init(options: Options) throws(DiskImageError) {
        self.options = options
        image = try DiskImage(path: options.path, readOnly: options.readOnly, cache: options.cache)
        var features = VirtioFeature.version1 | BlockFeature.sizeMax | BlockFeature.segMax | BlockFeature.blockSize | BlockFeature.flush
        features |= options.readOnly ? BlockFeature.readOnly : BlockFeature.discard | BlockFeature.writeZeroes
        offeredFeatures = features
        serial = Array((options.serial ?? "").utf8.prefix(BlockLimits.serialBytes))
    }

    /// A new backing file (PATCH /drives/{id}), opened with this disk's read-only and cache
    /// settings. Requests are served under the transport's lock, so none is halfway through; call
    /// through `VirtioMMIOTransport.configChanged` so the driver reads the new capacity.
    public func replaceImage(_ newImage: DiskImage) {
        image = newImage
        options.path = newImage.path
    }

    public func activate(features: UInt64) { negotiated = features }
    public func reset() { negotiated = 0 }

    /// Reads and writes straight into guest buffers, FLUSH, DISCARD and WRITE_ZEROES.
    public var hostSystemCalls: [SyscallRule] {
        ["preadv", "pwritev", "fdatasync", "fallocate"].map { SyscallRule($0) }
    }

    public func readConfig(offset: UInt64, count: Int) -> [UInt8] {
        var config = [UInt8](repeating: 0, count: BlockConfigOffset.length)
        func put(_ value: UInt64, at position: Int, bytes: Int) {
            for (index, byte) in littleEndianBytes(value, count: bytes).enumerated() { config[position + index] = byte }
        }
        put(image.sectorCount, at: BlockConfigOffset.capacity, bytes: 8)
        put(UInt64(BlockLimits.segmentBytes), at: BlockConfigOffset.sizeMax, bytes: 4)
        put(UInt64(BlockLimits.segmentsPerRequest), at: BlockConfigOffset.segMax, bytes: 4)
        put(BlockLimits.sectorBytes, at: BlockConfigOffset.blockSize, bytes: 4)
        put(UInt64(BlockLimits.rangeSectors), at: BlockConfigOffset.maxDiscardSectors, bytes: 4)
        put(UInt64(BlockLimits.rangesPerRequest), at: BlockConfigOffset.maxDiscardSeg, bytes: 4)
        // Holes are punched in whole host pages.
        put(GuestPage.bytes / BlockLimits.sectorBytes, at: BlockConfigOffset.discardSectorAlignment, bytes: 4)
        put(UInt64(BlockLimits.rangeSectors), at: BlockConfigOffset.maxWriteZeroesSectors, bytes: 4)
        put(UInt64(BlockLimits.rangesPerRequest), at: BlockConfigOffset.maxWriteZeroesSeg, bytes: 4)
        put(1, at: BlockConfigOffset.writeZeroesMayUnmap, bytes: 1)
        return (0..<count).map { index in
            let (position, overflow) = offset.addingReportingOverflow(UInt64(index))
            return !overflow && position < UInt64(config.count) ? config[Int(position)] : 0
        }
    }

    // Config writes are ignored: nothing in Ebb's config space is the driver's (no writeback toggle).

    public func process(queueIndex: Int, queue: inout SplitQueue, memory: GuestMemory) throws(QueueError) -> Bool {
        var used = false
        while let chain = try queue.popChain(memory: memory) {
            let request = try BlockRequest(chain, memory: memory)
            let (status, written) = try serve(request, memory: memory)
            switch status {
            case .ok: break
            case .ioError: counters.ioErrors += 1
            case .unsupported: counters.unsupported += 1
            }
            do { try memory.store(status.rawValue, at: request.statusAddress) } catch {
                throw .bufferOutsideRAM(address: request.statusAddress.value, length: 1)
            }
            try queue.pushUsed(head: request.head, length: UInt32(clamping: written + 1), memory: memory)
            used = true
        }
        return used
    }

    // MARK: Requests

    /// The request's status, and how many data bytes the device wrote into the guest's buffers.
    private func serve(_ request: BlockRequest, memory: GuestMemory) throws(QueueError) -> (BlockStatus, UInt64) {
        guard case let .valid(type, sector) = request.header else { return (.ioError, 0) }
        switch type {
        case BlockRequestType.in:
            let status = transfer(request, sector: sector, write: false, memory: memory)
            return (status, status == .ok ? request.dataBytes : 0)
        case BlockRequestType.out:
            return (transfer(request, sector: sector, write: true, memory: memory), 0)
        case BlockRequestType.flush:
            counters.flushes += 1
            return (image.flush() == 0 ? .ok : .ioError, 0)
        case BlockRequestType.getID:
            return identify(request, memory: memory)
        case BlockRequestType.discard where negotiated & BlockFeature.discard != 0,
             BlockRequestType.writeZeroes where negotiated & BlockFeature.writeZeroes != 0:
            return (try ranges(request, zeroes: type == BlockRequestType.writeZeroes, memory: memory), 0)
        default:
            return (.unsupported, 0)
        }
    }

    private func transfer(_ request: BlockRequest, sector: UInt64, write: Bool, memory: GuestMemory) -> BlockStatus {
        guard !(write && image.readOnly), request.dataIs(deviceWritable: !write) else { return .ioError }
        let bytes = request.dataBytes
        guard bytes <= BlockLimits.requestBytes,
              let range = BlockRequest.byteRange(sector: sector, bytes: bytes, sectorCount: image.sectorCount) else { return .ioError }
        var buffers: [UnsafeMutableRawBufferPointer] = []
        for segment in request.data {
            // The queue checked each buffer against guest RAM; asking again costs nothing.
            guard let buffer = try? memory.hostBuffer(at: segment.address, length: segment.length) else { return .ioError }
            buffers.append(buffer)
        }
        let result = write ? image.write(from: buffers, at: range.offset) : image.read(into: buffers, at: range.offset)
        guard result == 0 else { return .ioError }
        if write {
            counters.writes += 1
            counters.bytesWritten += bytes
        } else {
            counters.reads += 1
            counters.bytesRead += bytes
        }
        return .ok
    }

    private func identify(_ request: BlockRequest, memory: GuestMemory) -> (BlockStatus, UInt64) {
        guard request.dataIs(deviceWritable: true), let first = request.data.first else { return (.ioError, 0) }
        let count = Int(min(first.length, UInt64(BlockLimits.serialBytes)))
        var bytes = serial + [UInt8](repeating: 0, count: BlockLimits.serialBytes - serial.count)
        bytes.removeLast(BlockLimits.serialBytes - count)
        guard (try? memory.write(bytes, at: first.address)) != nil else { return (.ioError, 0) }
        return (.ok, UInt64(count))
    }

    /// DISCARD and WRITE_ZEROES: an array of ranges in device-readable data.
    private func ranges(_ request: BlockRequest, zeroes: Bool, memory: GuestMemory) throws(QueueError) -> BlockStatus {
        guard !image.readOnly, request.dataIs(deviceWritable: false) else { return .ioError }
        let total = request.dataBytes
        guard total > 0, total % UInt64(BlockLimits.rangeBytes) == 0,
              total / UInt64(BlockLimits.rangeBytes) <= UInt64(BlockLimits.rangesPerRequest) else { return .ioError }
        var bytes: [UInt8] = []
        for segment in request.data {
            guard let piece = try? memory.read(at: segment.address, count: Int(segment.length)) else { return .ioError }
            bytes += piece
        }
        var work: [(offset: UInt64, length: UInt64, unmap: Bool)] = []
        for start in stride(from: 0, to: bytes.count, by: BlockLimits.rangeBytes) {
            let sector = littleEndianValue(bytes[start..<start + 8])
            let sectors = littleEndianValue(bytes[start + 8..<start + 12])
            let flags = UInt32(littleEndianValue(bytes[start + 12..<start + 16]))
            // Discard has no flags; write-zeroes only "unmap". Reserved bits set: not ours to guess.
            guard flags & ~(zeroes ? BlockLimits.unmapFlag : 0) == 0 else { return .unsupported }
            guard sectors <= UInt64(BlockLimits.rangeSectors),
                  let range = BlockRequest.byteRange(sector: sector, bytes: sectors * BlockLimits.sectorBytes, sectorCount: image.sectorCount) else {
                return .ioError
            }
            work.append((range.offset, range.length, flags & BlockLimits.unmapFlag != 0))
        }
        for range in work where range.length > 0 {
            let result = zeroes ? image.writeZeroes(offset: range.offset, length: range.length, unmap: range.unmap)
                                : image.discard(offset: range.offset, length: range.length)
            // A discard is a hint: a file system that cannot punch holes just keeps the data.
            guard result == 0 || (!zeroes && result == EOPNOTSUPP) else { return .ioError }
        }
        if zeroes { counters.writeZeroes += 1 } else { counters.discards += 1 }
        return .ok
    }
}
