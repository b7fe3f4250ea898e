import GuestMemory
import Testing
@testable import Virtio

/// What virtio-net checks in a guest's transmit header before the tap sees it, and the MAC
/// addresses the front ends take.
@Suite struct NetHeaderTests {
    func header(flags: UInt8 = 0, gso: UInt8 = 0, gsoSize: UInt16 = 0) -> NetHeader {
        NetHeader([flags, gso, 54, 0, UInt8(gsoSize & 0xff), UInt8(gsoSize >> 8), 34, 0, 16, 0, 0xaa, 0xbb])
    }

    @Test func aPlainFrameGoesThroughAsItIs() {
        let plain = header()
        #expect(plain.sanitized(features: 0) == plain)
        #expect(plain.encoded == [0, 0, 54, 0, 0, 0, 34, 0, 16, 0, 0, 0], "num_buffers is zero towards the tap")
    }

    @Test func aChecksumRequestNeedsCSUM() {
        let partial = header(flags: 1)
        #expect(partial.sanitized(features: 0)?.flags == 0, "without CSUM the flag is cleared, not passed on")
        #expect(partial.sanitized(features: NetFeature.csum)?.flags == 1)
        #expect(header(flags: 0xfe).sanitized(features: NetFeature.csum)?.flags == 0, "unknown flag bits are cleared")
    }

    @Test func segmentationOnlyAsNegotiated() {
        let tso4 = header(flags: 1, gso: 1, gsoSize: 1448)
        #expect(tso4.sanitized(features: NetFeature.csum) == nil, "TSO4 without HOST_TSO4 is refused")
        #expect(tso4.sanitized(features: NetFeature.csum | NetFeature.hostTSO4) == tso4)
        #expect(header(flags: 1, gso: 4, gsoSize: 1428).sanitized(features: NetFeature.csum | NetFeature.hostTSO4) == nil)
        #expect(header(flags: 0, gso: 1, gsoSize: 1448).sanitized(features: NetFeature.csum | NetFeature.hostTSO4) == nil,
                "segmentation without a partial checksum")
        #expect(header(flags: 1, gso: 0x81, gsoSize: 1448).sanitized(features: NetFeature.offloads) == nil, "ECN was never offered")
        #expect(header(gso: 3).sanitized(features: NetFeature.offloads) == nil, "UDP fragmentation was never offered")
        #expect(header(gso: 0, gsoSize: 999).sanitized(features: 0)?.gsoSize == 0)
    }

    @Test func macAddresses() {
        #expect(MACAddress("06:00:0a:00:02:0f")?.bytes == [6, 0, 10, 0, 2, 15])
        #expect(MACAddress("06:00:0A:00:02:0F")?.description == "06:00:0a:00:02:0f")
        for bad in ["", "06:00:0a:00:02", "06:00:0a:00:02:0f:01", "06:00:0a:00:02:g0", "01:00:5e:00:00:01", "6:0:a:0:2:f", "06-00-0a-00-02-0f"] {
            #expect(MACAddress(bad) == nil, "\(bad)")
        }
    }

    @Test func numBuffersMayStraddleTwoDescriptors() {
        let chain = DescriptorChain(head: 0, descriptors: [
            Descriptor(address: GuestAddress(0x1000), length: 11, isDeviceWritable: true),
            Descriptor(address: GuestAddress(0x2000), length: 2000, isDeviceWritable: true),
        ])
        #expect(NetDevice.address(ofByte: 10, in: chain) == GuestAddress(0x100a))
        #expect(NetDevice.address(ofByte: 11, in: chain) == GuestAddress(0x2000))
        #expect(NetDevice.address(ofByte: 2011, in: chain) == nil)
    }
}
