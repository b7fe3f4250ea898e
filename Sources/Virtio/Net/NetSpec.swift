/// virtio-net constants (virtio 1.2, 5.1), named as there.
public enum NetFeature {
    /// VIRTIO_NET_F_CSUM: the driver may send frames with a partial checksum (the tap completes it).
    public static let csum: UInt64 = 1 << 0
    /// VIRTIO_NET_F_GUEST_CSUM: the driver accepts frames with a partial checksum.
    public static let guestCsum: UInt64 = 1 << 1
    public static let mtu: UInt64 = 1 << 3
    public static let mac: UInt64 = 1 << 5
    public static let guestTSO4: UInt64 = 1 << 7
    public static let guestTSO6: UInt64 = 1 << 8
    public static let hostTSO4: UInt64 = 1 << 11
    public static let hostTSO6: UInt64 = 1 << 12
    /// VIRTIO_NET_F_MRG_RXBUF: a received frame may span several receive chains.
    public static let mergeableRXBuffers: UInt64 = 1 << 15
    public static let status: UInt64 = 1 << 16

    /// The offloads Ebb passes through to a tap that takes them (the tap segments and checksums).
    public static let offloads: UInt64 = csum | guestCsum | guestTSO4 | guestTSO6 | hostTSO4 | hostTSO6
}

/// Byte offsets in struct virtio_net_config.
enum NetConfigOffset {
    static let mac = 0
    static let status = 6
    static let maxVirtqueuePairs = 8
    static let mtu = 10
    static let length = 12
}

/// VIRTIO_NET_S_LINK_UP
enum NetLinkStatus {
    static let up: UInt16 = 1
}

/// struct virtio_net_hdr_v1, which precedes every frame on both queues (virtio 1.2, 5.1.6).
public struct NetHeader: Sendable, Equatable {
    /// 12 bytes: with VERSION_1 the header always has num_buffers.
    public static let bytes = 12
    /// VIRTIO_NET_HDR_F_NEEDS_CSUM
    static let needsChecksum: UInt8 = 1
    /// VIRTIO_NET_HDR_GSO_NONE, _TCPV4, _TCPV6, and the ECN bit.
    static let gsoNone: UInt8 = 0
    static let gsoTCPv4: UInt8 = 1
    static let gsoTCPv6: UInt8 = 4
    static let gsoECN: UInt8 = 0x80
    /// Where num_buffers sits in the header.
    static let numBuffersOffset = 10

    public var flags: UInt8
    public var gsoType: UInt8
    public var headerLength: UInt16
    public var gsoSize: UInt16
    public var checksumStart: UInt16
    public var checksumOffset: UInt16

    public init(_ bytes: [UInt8]) {
        func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
        flags = bytes[0]
        gsoType = bytes[1]
        headerLength = u16(2)
        gsoSize = u16(4)
        checksumStart = u16(6)
        checksumOffset = u16(8)
    }

    /// The header as a tap may see it from a driver that negotiated `features`: what the driver
    /// may not ask for is cleared, so a hostile guest cannot make the tap do work it never offered.
    /// Nil when the header asks for what no negotiation allows (UDP fragmentation, unknown types).
    public func sanitized(features: UInt64) -> NetHeader? {
        var header = self
        if features & NetFeature.csum == 0 {
            header.flags = 0
        } else {
            header.flags &= Self.needsChecksum
        }
        switch gsoType & ~Self.gsoECN {
        case Self.gsoNone:
            header.gsoType = Self.gsoNone
            header.gsoSize = 0
        case Self.gsoTCPv4 where features & NetFeature.hostTSO4 != 0, Self.gsoTCPv6 where features & NetFeature.hostTSO6 != 0:
            // ECN was never offered (HOST_ECN): a frame asking for it is refused.
            guard gsoType & Self.gsoECN == 0, header.flags & Self.needsChecksum != 0 else { return nil }
        default:
            return nil
        }
        return header
    }

    /// The header's 12 bytes, written over `bytes` (which it leaves 12 long, allocating only
    /// when it was not).
    public func encode(into bytes: inout [UInt8]) {
        if bytes.count != Self.bytes { bytes = [UInt8](repeating: 0, count: Self.bytes) }
        bytes[0] = flags
        bytes[1] = gsoType
        bytes[2] = UInt8(truncatingIfNeeded: headerLength)
        bytes[3] = UInt8(headerLength >> 8)
        bytes[4] = UInt8(truncatingIfNeeded: gsoSize)
        bytes[5] = UInt8(gsoSize >> 8)
        bytes[6] = UInt8(truncatingIfNeeded: checksumStart)
        bytes[7] = UInt8(checksumStart >> 8)
        bytes[8] = UInt8(truncatingIfNeeded: checksumOffset)
        bytes[9] = UInt8(checksumOffset >> 8)
        // num_buffers: 0 from a driver.
        bytes[10] = 0
        bytes[11] = 0
    }

    public var encoded: [UInt8] {
        var bytes: [UInt8] = []
        encode(into: &bytes)
        return bytes
    }
}

/// Ebb's limits for one network device.
public enum NetLimits {
    public static let queueSize: UInt16 = 256
    /// The largest frame without segmentation offloads: Ethernet header, a VLAN tag, the MTU.
    static func frameBytes(mtu: UInt16) -> Int { 14 + 4 + Int(mtu) }
    /// The largest frame a segmentation offload makes (Linux's GSO_MAX_SIZE, 64 KiB, and the
    /// Ethernet header and a VLAN tag around it).
    static let segmentedFrameBytes = 14 + 4 + 65536
    /// A transmitted chain larger than this is dropped.
    static let largestTransmitBytes = NetHeader.bytes + segmentedFrameBytes
    /// The shortest frame worth sending: an Ethernet header.
    static let shortestFrameBytes = 14
}
