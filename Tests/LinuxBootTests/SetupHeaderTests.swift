import Testing
@testable import LinuxBoot

/// A minimal well-formed bzImage: 4 setup sectors and 8 KiB of "kernel".
func makeBzImage(version: UInt16 = 0x020f, xloadflags: UInt16 = 1, setupSectors: UInt8 = 4, kernelBytes: Int = 8192) -> [UInt8] {
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
    return image
}

@Suite struct SetupHeaderTests {
    @Test func parsesAValidHeader() throws {
        let header = try SetupHeader(image: makeBzImage())
        #expect(header.version == 0x020f)
        #expect(header.kernelOffset == 5 * 512)
        #expect(header.commandLineSizeMax == 2047)
        #expect(header.initSizeBytes == 0x40_0000)
        #expect(header.rawHeader.count == 0x26c - 0x1f1)
        #expect(header.rawHeader.first == 4)
    }

    @Test func refusesForeignFiles() {
        #expect(throws: BootImageError.unrecognized) { try SetupHeader(image: [UInt8](repeating: 0x90, count: 4096)) }
        #expect(throws: BootImageError.unrecognized) { try SetupHeader(image: []) }
        #expect(throws: BootImageError.unrecognized) { try KernelImage(bytes: Array("#!/bin/sh\necho hi\n".utf8)) }
    }

    @Test func refusesTruncatedImages() {
        let image = makeBzImage()
        #expect(throws: BootImageError.self) { try SetupHeader(image: Array(image[0..<0x210])) }
        #expect(throws: BootImageError.self) { try SetupHeader(image: Array(image[0..<(5 * 512 + 0x100)])) }
        // syssize claims more kernel than the file has.
        #expect(throws: BootImageError.self) { try SetupHeader(image: Array(image[0..<(5 * 512 + 4096)])) }
    }

    @Test func refusesOldProtocolsAnd32BitOnlyKernels() {
        #expect(throws: BootImageError.unsupportedProtocol(version: 0x020a)) { try SetupHeader(image: makeBzImage(version: 0x020a)) }
        #expect(throws: BootImageError.not64Bit) { try SetupHeader(image: makeBzImage(xloadflags: 0)) }
    }

    @Test func corruptedFieldsNeverTrap() {
        // Flip every byte of the header region one at a time: parse must throw or succeed, never crash.
        let original = makeBzImage()
        for offset in 0x1f1..<0x270 {
            var image = original
            image[offset] ^= 0xff
            _ = try? SetupHeader(image: image)
        }
    }

    @Test func setupSectorsZeroMeansFour() throws {
        var image = makeBzImage()
        image[0x1f1] = 0
        #expect(try SetupHeader(image: image).kernelOffset == 5 * 512)
    }
}
