import Foundation
import Testing
@testable import ACPI

func sampleTables() -> ACPITables {
    let devices = [
        ACPIDevice(name: "COM1", hardwareID: .eisa("PNP0501"), uniqueID: 0,
                   resources: [.ioPorts(base: 0x3f8, count: 8), .isaIRQ(4)]),
        ACPIDevice(name: "VR00", hardwareID: .string("LNRO0005"), uniqueID: 0,
                   resources: [.memory32Fixed(base: 0xd000_0000, sizeBytes: 0x200, writable: true),
                               .interrupt(5, edgeTriggered: true, activeLow: false)]),
    ]
    return ACPITables(
        baseAddress: 0xe_0000,
        dsdt: makeDSDT(devices: devices, sleepTypeS5: 5),
        makeFADT: { FADT(dsdtAddress: $0, sleepControl: .ioPort(0x600), sleepStatus: .ioPort(0x601),
                         resetRegister: .ioPort(0x602), resetValue: 1) },
        madt: MADT(localAPICAddress: 0xfee0_0000, apicIDs: [0, 1], ioAPIC: (id: 2, address: 0xfec0_0000, gsiBase: 0)))
}

/// The table at guest address `address` inside `tables`.
func table(at address: UInt64, in tables: ACPITables) -> [UInt8] {
    let offset = Int(address - tables.baseAddress)
    let length = Int(tables.bytes[offset + 4..<offset + 8].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) })
    return Array(tables.bytes[offset..<offset + length])
}

func le64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
    (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) }
}

@Suite struct ACPITests {
    @Test func rsdpPointsAtAnXSDTListingFADTAndMADT() {
        let tables = sampleTables()
        let rsdp = Array(tables.bytes[0..<36])
        #expect(Array(rsdp[0..<8]) == Array("RSD PTR ".utf8))
        #expect(rsdp[0..<20].reduce(0, &+) == 0)
        #expect(rsdp.reduce(0, &+) == 0)
        let xsdt = table(at: le64(rsdp, 24), in: tables)
        #expect(Array(xsdt[0..<4]) == Array("XSDT".utf8))
        let signatures = stride(from: 36, to: xsdt.count, by: 8).map { offset in
            String(decoding: table(at: le64(xsdt, offset), in: tables)[0..<4], as: UTF8.self)
        }
        #expect(signatures == ["FACP", "APIC"])
    }

    @Test func everyTableChecksumsToZero() {
        let tables = sampleTables()
        let xsdt = table(at: le64(Array(tables.bytes[0..<36]), 24), in: tables)
        var all = [xsdt]
        for offset in stride(from: 36, to: xsdt.count, by: 8) { all.append(table(at: le64(xsdt, offset), in: tables)) }
        let fadt = all[1]
        all.append(table(at: le64(fadt, 140), in: tables))
        #expect(all.count == 4)
        for bytes in all { #expect(bytes.reduce(0, &+) == 0, "\(String(decoding: bytes[0..<4], as: UTF8.self))") }
        #expect(fadt.count == 276)
        #expect(fadt[8] == 6)
        #expect(fadt[112..<116].elementsEqual([0, 4, 0x10, 0])) // HW_REDUCED_ACPI | RESET_REG_SUP
        #expect(fadt[244] == 1 && le64(fadt, 248) == 0x600) // sleep control: I/O port 0x600
    }

    @Test func madtListsEachCPUAndTheIOAPIC() {
        let tables = sampleTables()
        let xsdt = table(at: le64(Array(tables.bytes[0..<36]), 24), in: tables)
        let madt = table(at: le64(xsdt, 44), in: tables)
        var offset = 44
        var cpus: [UInt8] = []
        var ioapics = 0
        while offset + 2 <= madt.count {
            let (type, length) = (madt[offset], Int(madt[offset + 1]))
            #expect(length >= 2)
            if type == 0 && madt[offset + 4] & 1 == 1 { cpus.append(madt[offset + 3]) }
            if type == 1 { ioapics += 1 }
            offset += length
        }
        #expect(offset == madt.count)
        #expect(cpus == [0, 1])
        #expect(ioapics == 1)
    }

    @Test func amlEncodingsMatchTheSpec() {
        #expect(AML.compressEISA("PNP0501") == 0x0105_d041)
        #expect(AML.withPackageLength([UInt8](repeating: 0, count: 10)).first == 11)
        let long = AML.withPackageLength([UInt8](repeating: 0, count: 100))
        #expect(long[0] == 0x40 | UInt8(102 & 0xf) && long[1] == UInt8(102 >> 4))
        let huge = AML.withPackageLength([UInt8](repeating: 0, count: 5000))
        #expect(huge[0] >> 6 == 2)
        #expect(AML.nameString("\\_SB.COM1") == [0x5c, 0x2e] + Array("_SB_COM1".utf8))
        #expect(AML.integer(0x1234).encoded == [0x0b, 0x34, 0x12])
    }

    /// Disassembles the DSDT with ACPICA's iasl: the tool Linux's own ACPI interpreter is built from.
    @Test func iaslDisassemblesTheDSDT() throws {
        guard let iasl = ["/usr/bin/iasl", "/usr/local/bin/iasl"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            Issue.record("iasl not found: install Debian's acpica-tools (scripts/test does)")
            return
        }
        let tables = sampleTables()
        let fadt = table(at: le64(table(at: le64(Array(tables.bytes[0..<36]), 24), in: tables), 36), in: tables)
        let dsdt = table(at: le64(fadt, 140), in: tables)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ebb-aml-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("dsdt.aml")
        try Data(dsdt).write(to: file)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: iasl)
        process.arguments = ["-d", file.path]
        process.currentDirectoryURL = directory
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let log = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(log)")
        let source = try String(contentsOf: directory.appendingPathComponent("dsdt.dsl"), encoding: .utf8)
        for expected in ["Name (_S5, Package", "Device (COM1)", "EisaId (\"PNP0501\")", "IO (Decode16",
                         "Device (VR00)", "\"LNRO0005\"", "Memory32Fixed (ReadWrite", "0xD0000000",
                         "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive"] {
            #expect(source.contains(expected), "DSDT lacks \(expected):\n\(source)")
        }
        #expect(!log.contains("Error"), "\(log)")
    }
}
