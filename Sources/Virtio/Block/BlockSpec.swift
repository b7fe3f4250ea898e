/// virtio-blk constants (virtio 1.2, 5.2), named as there.
public enum BlockFeature {
    public static let sizeMax: UInt64 = 1 << 1
    public static let segMax: UInt64 = 1 << 2
    public static let readOnly: UInt64 = 1 << 5
    public static let blockSize: UInt64 = 1 << 6
    public static let flush: UInt64 = 1 << 9
    public static let discard: UInt64 = 1 << 13
    public static let writeZeroes: UInt64 = 1 << 14
}

/// The `type` field of a request header.
enum BlockRequestType {
    static let `in`: UInt32 = 0
    static let out: UInt32 = 1
    static let flush: UInt32 = 4
    static let getID: UInt32 = 8
    static let discard: UInt32 = 11
    static let writeZeroes: UInt32 = 13
}

/// The status byte the device writes last.
public enum BlockStatus: UInt8, Sendable {
    case ok = 0
    case ioError = 1
    case unsupported = 2
}

/// Ebb's limits for one disk, as its config space announces them; a request beyond them fails.
public enum BlockLimits {
    /// Sectors are 512 bytes whatever the image's block size (virtio 1.2, 5.2.6).
    public static let sectorBytes: UInt64 = 512
    public static let queueSize: UInt16 = 256
    /// Data buffers per request (the header and status take two more descriptors).
    public static let segmentsPerRequest: UInt32 = UInt32(queueSize) - 2
    /// The largest single data buffer.
    public static let segmentBytes: UInt32 = 1 << 20
    /// The most data one request may move; Linux's requests are far smaller (max_sectors_kb).
    public static let requestBytes: UInt64 = 32 << 20
    /// Discard and write-zeroes: ranges per request and sectors per range.
    public static let rangesPerRequest: UInt32 = 32
    public static let rangeSectors: UInt32 = UInt32(1 << 30) / UInt32(sectorBytes)
    /// VIRTIO_BLK_ID_BYTES: the serial GET_ID returns, zero-padded.
    public static let serialBytes = 20
    /// virtio_blk_outhdr: le32 type, le32 reserved, le64 sector.
    static let headerBytes = 16
    /// virtio_blk_discard_write_zeroes: le64 sector, le32 num_sectors, le32 flags.
    static let rangeBytes = 16
    /// The unmap flag of a write-zeroes range; other flag bits are reserved.
    static let unmapFlag: UInt32 = 1
}

/// Byte offsets in struct virtio_blk_config.
enum BlockConfigOffset {
    static let capacity = 0
    static let sizeMax = 8
    static let segMax = 12
    static let blockSize = 20
    static let maxDiscardSectors = 36
    static let maxDiscardSeg = 40
    static let discardSectorAlignment = 44
    static let maxWriteZeroesSectors = 48
    static let maxWriteZeroesSeg = 52
    static let writeZeroesMayUnmap = 56
    /// The config space Ebb exposes ends after write_zeroes_may_unmap and its padding.
    static let length = 60
}
