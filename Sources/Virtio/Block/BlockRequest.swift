import ByteOrder
import GuestMemory

/// One virtio-blk request taken apart and checked (virtio 1.2, 5.2.6): a 16-byte header in
/// device-readable buffers, the data, and a status byte at the very end, in a device-writable
/// buffer. The guest is not trusted: a request without a writable status byte cannot be answered
/// and breaks the queue; anything else wrong with it is answered with a status.
struct BlockRequest {
    /// A piece of the chain between the header and the status byte.
    struct Segment {
        let address: GuestAddress
        let length: UInt64
        let isDeviceWritable: Bool
    }

    enum Header {
        case valid(type: UInt32, sector: UInt64)
        /// Fewer than 16 header bytes before the first device-writable buffer.
        case short
    }

    let head: UInt16
    let header: Header
    let data: [Segment]
    let statusAddress: GuestAddress

    init(_ chain: DescriptorChain, memory: GuestMemory) throws(QueueError) {
        guard let last = chain.descriptors.last, last.isDeviceWritable, last.length >= 1,
              let status = last.address.adding(UInt64(last.length) - 1) else {
            throw .malformedRequest("virtio-blk request without a device-writable status byte at its end")
        }
        head = chain.head
        statusAddress = status
        var pieces = chain.descriptors.map { Segment(address: $0.address, length: UInt64($0.length), isDeviceWritable: $0.isDeviceWritable) }
        pieces[pieces.count - 1] = Segment(address: last.address, length: UInt64(last.length) - 1, isDeviceWritable: true)

        var headerBytes: [UInt8] = []
        var index = 0
        while headerBytes.count < BlockLimits.headerBytes, index < pieces.count, !pieces[index].isDeviceWritable {
            let piece = pieces[index]
            let take = min(piece.length, UInt64(BlockLimits.headerBytes - headerBytes.count))
            do { headerBytes += try memory.read(at: piece.address, count: Int(take)) } catch {
                throw .bufferOutsideRAM(address: piece.address.value, length: UInt32(piece.length))
            }
            if take == piece.length {
                index += 1
            } else if let rest = piece.address.adding(take) {
                pieces[index] = Segment(address: rest, length: piece.length - take, isDeviceWritable: false)
            }
        }
        data = pieces[index...].filter { $0.length > 0 }
        if headerBytes.count == BlockLimits.headerBytes {
            header = .valid(type: UInt32(littleEndianValue(headerBytes[0..<4])), sector: littleEndianValue(headerBytes[8..<16]))
        } else {
            header = .short
        }
    }

    var dataBytes: UInt64 { data.reduce(0) { $0 + $1.length } }

    /// Whether every data segment goes the one way: written by the device (a read) or not.
    func dataIs(deviceWritable: Bool) -> Bool { data.allSatisfy { $0.isDeviceWritable == deviceWritable } }

    /// The image's byte range for `bytes` from `sector`, if it is whole sectors inside a disk of
    /// `sectorCount` sectors; nil otherwise (no arithmetic here can overflow).
    static func byteRange(sector: UInt64, bytes: UInt64, sectorCount: UInt64) -> (offset: UInt64, length: UInt64)? {
        guard bytes % BlockLimits.sectorBytes == 0, sector <= sectorCount,
              bytes / BlockLimits.sectorBytes <= sectorCount - sector else { return nil }
        return (sector * BlockLimits.sectorBytes, bytes)
    }
}
