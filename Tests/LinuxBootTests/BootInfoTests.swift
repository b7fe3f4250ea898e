import BootImageFixtures
import Testing
@testable import LinuxBoot

func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
    (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
}

func u64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
    (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) }
}

let sampleMap = [
    MemoryMapEntry(address: 0, sizeBytes: 0xa_0000, kind: .ram),
    MemoryMapEntry(address: 0xe_0000, sizeBytes: 0x2_0000, kind: .reserved),
    MemoryMapEntry(address: 0x10_0000, sizeBytes: 0x1ff0_0000, kind: .ram),
]

@Suite struct BootInfoTests {
    @Test func bootParamsCarryTheE820MapCommandLineInitrdAndRSDP() throws {
        var params = BootParams(header: try SetupHeader(image: makeBzImage()))
        params.commandLineAddress = 0x20000
        params.rsdpAddress = 0xe_0000
        params.initrd = (address: 0x1f00_0000, sizeBytes: 0x12345)
        params.memoryMap = sampleMap
        let page = try params.encoded()
        #expect(page.count == 4096)
        #expect(page[0x1e8] == 3)
        #expect(u64(page, 0x2d0 + 20) == 0xe_0000)
        #expect(u64(page, 0x2d0 + 28) == 0x2_0000)
        #expect(u32(page, 0x2d0 + 36) == 2)
        #expect(u32(page, 0x228) == 0x20000)
        #expect(u32(page, 0x218) == 0x1f00_0000)
        #expect(u32(page, 0x21c) == 0x12345)
        #expect(u64(page, 0x070) == 0xe_0000)
        #expect(page[0x210] == 0xff) // type_of_loader
        #expect(u32(page, 0x202) == 0x5372_6448) // the header was copied
    }

    @Test func bootParamsRefuseAnOversizedMemoryMap() throws {
        var params = BootParams(header: try SetupHeader(image: makeBzImage()))
        params.memoryMap = Array(repeating: sampleMap[0], count: 129)
        #expect(throws: BootImageError.self) { try params.encoded() }
    }

    @Test func pvhStartInfoLaysOutModulesAndMemoryMap() {
        var info = StartInfo()
        info.commandLineAddress = 0x20000
        info.rsdpAddress = 0xe_0000
        info.initrd = (address: 0x1000_0000, sizeBytes: 4096)
        info.memoryMap = sampleMap
        let bytes = info.encoded(at: 0x6000)
        #expect(bytes.count == 56 + 32 + 3 * 24)
        #expect(u32(bytes, 0) == 0x336e_c578)
        #expect(u32(bytes, 4) == 1)
        #expect(u32(bytes, 12) == 1)
        #expect(u64(bytes, 16) == 0x6000 + 56)
        #expect(u64(bytes, 24) == 0x20000)
        #expect(u64(bytes, 32) == 0xe_0000)
        #expect(u64(bytes, 40) == 0x6000 + 56 + 32)
        #expect(u32(bytes, 48) == 3)
        #expect(u64(bytes, 56) == 0x1000_0000)
        #expect(u64(bytes, 64) == 4096)
        #expect(u64(bytes, 88 + 24 * 2) == 0x10_0000)
        #expect(u32(bytes, 88 + 24 * 2 + 16) == 1)
    }
}
