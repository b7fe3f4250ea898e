/// Boot images small enough to build in a test: shared by the LinuxBoot and VMM tests.

/// A minimal well-formed bzImage: 4 setup sectors and 8 KiB of "kernel".
public func makeBzImage(version: UInt16 = 0x020f, xloadflags: UInt16 = 1, setupSectors: UInt8 = 4, kernelBytes: Int = 8192,
                        relocatable: Bool = false, kernelAlignment: UInt32 = 0x20_0000, preferredAddress: UInt64 = 0x100_0000) -> [UInt8] {
    var image = [UInt8](repeating: 0, count: (Int(setupSectors) + 1) * 512 + kernelBytes)
    func put<T: FixedWidthInteger>(_ value: T, _ offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { image[offset + i] = b } }
    }
    put(setupSectors, 0x1f1)
    put(UInt32(kernelBytes / 16), 0x1f4)
    put(UInt16(0xaa55), 0x1fe)
    put(UInt8(0xeb), 0x200)
    put(UInt8(0x6a), 0x201) // jump over the header: it ends at 0x26c
    put(UInt32(0x5372_6448), 0x202)
    put(version, 0x206)
    put(UInt8(1), 0x211)
    put(UInt32(0x7fff_ffff), 0x22c)
    put(UInt32(2047), 0x238)
    put(xloadflags, 0x236)
    put(UInt32(0x40_0000), 0x260)
    put(kernelAlignment, 0x230)
    put(UInt8(relocatable ? 1 : 0), 0x234)
    put(preferredAddress, 0x258)
    image[(Int(setupSectors) + 1) * 512] = 0xf4 // the kernel's first byte, to find where it went
    return image
}

/// An ELF64 kernel of one 4 KiB segment at `address`, with a PVH note (entry = address).
public func tinyPVHKernel(at address: UInt64 = 0x100000) -> [UInt8] {
    var image = [UInt8](repeating: 0, count: 0x2000)
    func put<T: FixedWidthInteger>(_ value: T, _ offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { image[offset + i] = b } }
    }
    image.replaceSubrange(0..<4, with: [0x7f, 0x45, 0x4c, 0x46])
    image[4] = 2; image[5] = 1
    put(UInt16(62), 18); put(UInt64(64), 32); put(UInt16(56), 54); put(UInt16(2), 56)
    put(UInt32(1), 64); put(UInt64(0x1000), 72); put(address, 88); put(UInt64(0x1000), 96); put(UInt64(0x3000), 104)
    put(UInt32(4), 120); put(UInt64(0x300), 128); put(UInt64(20), 152)
    put(UInt32(4), 0x300); put(UInt32(4), 0x304); put(UInt32(18), 0x308)
    image.replaceSubrange(0x30c..<0x310, with: Array("Xen\0".utf8))
    put(UInt32(truncatingIfNeeded: address), 0x310)
    image[0x1000] = 0xf4 // hlt, so the segment has recognisable bytes
    return image
}
