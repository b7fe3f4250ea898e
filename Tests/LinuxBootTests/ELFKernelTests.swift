import Testing
@testable import LinuxBoot

/// An ELF64 x86-64 image with one PT_LOAD and, optionally, a PT_NOTE holding Xen's PHYS32_ENTRY.
func makeELF(withNote: Bool = true, entry: UInt32 = 0x10_0040, loadOffset: UInt64 = 0x200, fileSize: UInt64 = 0x100) -> [UInt8] {
    var image = [UInt8](repeating: 0, count: 0x400)
    func put<T: FixedWidthInteger>(_ value: T, _ offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { image[offset + i] = b } }
    }
    image.replaceSubrange(0..<4, with: [0x7f, 0x45, 0x4c, 0x46])
    image[4] = 2; image[5] = 1; image[6] = 1
    put(UInt16(2), 16); put(UInt16(62), 18)
    put(UInt64(64), 32)                   // e_phoff
    put(UInt16(56), 54)                   // e_phentsize
    put(UInt16(withNote ? 2 : 1), 56)     // e_phnum
    // PT_LOAD at 1 MiB.
    put(UInt32(1), 64); put(loadOffset, 64 + 8); put(UInt64(0x10_0000), 64 + 24)
    put(fileSize, 64 + 32); put(UInt64(0x1000), 64 + 40)
    if withNote {
        put(UInt32(4), 120); put(UInt64(0x300), 120 + 8); put(UInt64(20), 120 + 32)
        put(UInt32(4), 0x300); put(UInt32(4), 0x304); put(UInt32(18), 0x308)
        image.replaceSubrange(0x30c..<0x310, with: Array("Xen\0".utf8))
        put(entry, 0x310)
    }
    return image
}

@Suite struct ELFKernelTests {
    @Test func findsSegmentsAndThePVHEntry() throws {
        let kernel = try ELFKernel(image: makeELF())
        #expect(kernel.pvhEntry == 0x10_0040)
        #expect(kernel.segments == [.init(fileOffset: 0x200, fileSizeBytes: 0x100, physicalAddress: 0x10_0000, memorySizeBytes: 0x1000)])
        guard case .pvh = try KernelImage(bytes: makeELF()) else { Issue.record("not detected as PVH"); return }
    }

    @Test func refusesAnELFWithoutPVHNote() {
        #expect(throws: BootImageError.noPVHEntry) { try ELFKernel(image: makeELF(withNote: false)) }
    }

    @Test func refusesSegmentsOutsideTheFile() {
        #expect(throws: BootImageError.self) { try ELFKernel(image: makeELF(loadOffset: 0x380, fileSize: 0x100)) }
        #expect(throws: BootImageError.self) { try ELFKernel(image: makeELF(loadOffset: UInt64.max - 8)) }
    }

    @Test func refusesOtherArchitecturesAndTruncation() {
        var image = makeELF()
        image[4] = 1
        #expect(throws: BootImageError.self) { try ELFKernel(image: image) }
        #expect(throws: BootImageError.self) { try ELFKernel(image: Array(makeELF()[0..<40])) }
        var arm = makeELF()
        arm[18] = 183
        #expect(throws: BootImageError.self) { try ELFKernel(image: arm) }
    }

    @Test func randomCorruptionNeverTraps() {
        var generator = SystemRandomNumberGenerator()
        let original = makeELF()
        for _ in 0..<2000 {
            var image = original
            for _ in 0..<4 { image[Int.random(in: 0..<0x320, using: &generator)] = UInt8.random(in: 0...255, using: &generator) }
            _ = try? ELFKernel(image: image)
        }
    }
}
