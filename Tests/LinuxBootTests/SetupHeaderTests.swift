import BootImageFixtures
import Testing
@testable import LinuxBoot

@Suite struct SetupHeaderTests {
    @Test func parsesAValidHeader() throws {
        let header = try SetupHeader(image: makeBzImage())
        #expect(header.version == 0x020f)
        #expect(header.kernelOffset == 5 * 512)
        #expect(header.commandLineSizeMax == 2047)
        #expect(header.initSizeBytes == 0x40_0000)
        #expect(header.rawHeader.count == 0x26c - 0x1f1)
        #expect(header.rawHeader.first == 4)
        #expect(!header.isRelocatable)
        let relocatable = try SetupHeader(image: makeBzImage(relocatable: true, kernelAlignment: 0x100_0000, preferredAddress: 0x200_0000))
        #expect(relocatable.isRelocatable)
        #expect(relocatable.kernelAlignmentBytes == 0x100_0000)
        #expect(relocatable.preferredLoadAddress == 0x200_0000)
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
