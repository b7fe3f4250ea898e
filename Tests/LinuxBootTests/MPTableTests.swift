import Testing
@testable import LinuxBoot

@Suite struct MPTableTests {
    let table = MPTable(localAPICAddress: 0xfee0_0000, apicIDs: [0, 1, 2], ioAPIC: (id: 3, address: 0xfec0_0000),
                        cpuSignature: 0x806f8, cpuFeatures: 0x178b_fbff)

    func sum(_ bytes: ArraySlice<UInt8>) -> UInt8 { bytes.reduce(0, &+) }
    func u16(_ bytes: [UInt8], _ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
    func u32(_ bytes: [UInt8], _ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) } }

    @Test func floatingPointerIsWhatLinuxsScanAccepts() {
        let bytes = table.bytes(at: 0xf0000)
        // smp_scan_config: "_MP_", length 1 (16 bytes), revision 1 or 4, bytes sum to 0.
        #expect(Array(bytes[0..<4]) == Array("_MP_".utf8))
        #expect(bytes[8] == 1 && bytes[9] == 4)
        #expect(sum(bytes[0..<16]) == 0)
        #expect(u32(bytes, 4) == 0xf0010, "the configuration table follows the pointer")
        #expect(bytes[11] == 0, "feature byte 1 is 0: a configuration table is present")
    }

    @Test func configurationTableHasEveryEntryAndChecksums() {
        let bytes = Array(table.bytes(at: 0xf0000).dropFirst(16))
        let length = u16(bytes, 4)
        #expect(Array(bytes[0..<4]) == Array("PCMP".utf8))
        #expect(length == bytes.count)
        #expect(sum(bytes[0..<length]) == 0)
        #expect(bytes[6] == 4)
        #expect(u32(bytes, 36) == 0xfee0_0000)
        var types: [UInt8] = []
        var offset = 44
        while offset < length {
            types.append(bytes[offset])
            offset += bytes[offset] == 0 ? 20 : 8
        }
        #expect(offset == length)
        #expect(types.count == u16(bytes, 34))
        // 3 processors, the ISA bus, the IOAPIC, ExtINT + an interrupt for each of the other 23
        // IOAPIC inputs (IRQ 0 on pin 2), ExtINT and NMI pins.
        #expect(types == [0, 0, 0, 1, 2] + [UInt8](repeating: 3, count: 24) + [4, 4])
    }

    @Test func processorsAndInterruptRoutingMatchTheMADT() {
        let bytes = Array(table.bytes(at: 0xf0000).dropFirst(16))
        // First processor entry: APIC id 0, enabled and the boot processor; the others only enabled.
        #expect(bytes[44 + 1] == 0 && bytes[44 + 3] == 0b11)
        #expect(bytes[64 + 1] == 1 && bytes[64 + 3] == 0b01)
        #expect(u32(bytes, 44 + 4) == 0x806f8)
        let ioAPIC = 44 + 3 * 20 + 8
        #expect(bytes[ioAPIC + 1] == 3 && u32(bytes, ioAPIC + 4) == 0xfec0_0000)
        // Interrupt entries: (type, source IRQ, destination pin). ISA IRQ 0 is on pin 2, as in the MADT.
        var routes: [(UInt8, UInt8, UInt8)] = []
        for index in 0..<24 {
            let entry = ioAPIC + 8 + 8 * index
            #expect(bytes[entry + 6] == 3, "every interrupt goes to IOAPIC 3")
            routes.append((bytes[entry + 1], bytes[entry + 5], bytes[entry + 7]))
        }
        #expect(routes[0] == (3, 0, 0))
        #expect(routes[1] == (0, 0, 2))
        #expect(routes.dropFirst(2).allSatisfy { $0.0 == 0 && $0.1 == $0.2 && $0.1 != 2 })
        // Every pin from 3 to 23 is routed: device GSIs above 15 included.
        #expect(Set(routes.dropFirst(2).map(\.2)) == Set([1] + Array(3...23)))
    }
}
