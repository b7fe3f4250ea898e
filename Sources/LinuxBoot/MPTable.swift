import ByteOrder

/// The Intel MultiProcessor Specification 1.4 table a PC BIOS provides: a floating pointer
/// ("_MP_") that kernels find by scanning low memory, and a configuration table ("PCMP") listing the
/// processors, the ISA bus, the IOAPIC and how interrupts reach them.
///
/// Ebb describes the machine through ACPI, which Linux prefers; the MP table is for the kernels
/// built with `CONFIG_X86_MPPARSE` (tinyconfig has it) that look for one first. Without it such a
/// kernel scans the whole 64 KiB BIOS area 16 bytes at a time, which on a host that emulates guest
/// kernel code cost 3.5 s of boot (measured with the small kernel of `guest/build-linux-kernel.sh`).
/// The interrupt routing matches the MADT: ISA IRQ 0 on IOAPIC pin 2, every other line up to the
/// IOAPIC's last pin on its own pin (as Firecracker's table does), so that a device's GSI above 15
/// is routed here as it is in the DSDT.
public struct MPTable: Sendable {
    public static let floatingPointerBytes = 16
    static let headerBytes = 44
    static let processorEntryBytes = 20
    static let otherEntryBytes = 8
    /// Version 1.4 of the specification.
    static let specificationRevision: UInt8 = 4
    static let localAPICVersion: UInt8 = 0x14
    static let ioAPICVersion: UInt8 = 0x11

    enum EntryType {
        static let processor: UInt8 = 0
        static let bus: UInt8 = 1
        static let ioAPIC: UInt8 = 2
        static let ioInterrupt: UInt8 = 3
        static let localInterrupt: UInt8 = 4
    }

    enum InterruptType {
        static let vectored: UInt8 = 0
        static let nmi: UInt8 = 1
        static let extINT: UInt8 = 3
    }

    public let localAPICAddress: UInt32
    public let apicIDs: [UInt8]
    public let ioAPIC: (id: UInt8, address: UInt32)
    /// How many input pins the IOAPIC has; every one but 2 gets an interrupt entry.
    public let ioAPICPins: UInt8
    /// CPUID.1 EAX and EDX, copied into each processor entry.
    public let cpuSignature: UInt32
    public let cpuFeatures: UInt32

    public init(localAPICAddress: UInt32, apicIDs: [UInt8], ioAPIC: (id: UInt8, address: UInt32), ioAPICPins: UInt8 = 24,
                cpuSignature: UInt32, cpuFeatures: UInt32) {
        self.localAPICAddress = localAPICAddress
        self.apicIDs = apicIDs
        self.ioAPIC = ioAPIC
        self.ioAPICPins = ioAPICPins
        self.cpuSignature = cpuSignature
        self.cpuFeatures = cpuFeatures
    }

    /// Bytes of the floating pointer followed by the configuration table, for `address`.
    public func bytes(at address: UInt32) -> [UInt8] {
        var pointer: [UInt8] = Array("_MP_".utf8)
        pointer += littleEndianBytes(address + UInt32(Self.floatingPointerBytes))   // the configuration table follows
        pointer += [1, Self.specificationRevision, 0]                   // length in 16-byte units, revision, checksum
        pointer += [0, 0, 0, 0, 0]                                      // feature bytes: a table is present, no IMCR
        pointer[10] = checksum(pointer)
        return pointer + configurationTable()
    }

    func configurationTable() -> [UInt8] {
        var entries: [UInt8] = []
        var count = 0
        func add(_ entry: [UInt8]) { entries += entry; count += 1 }

        for (index, apicID) in apicIDs.enumerated() {
            let flags: UInt8 = index == 0 ? 0b11 : 0b01   // enabled; the first is the boot processor
            add([EntryType.processor, apicID, Self.localAPICVersion, flags] + littleEndianBytes(cpuSignature) + littleEndianBytes(cpuFeatures)
                + [UInt8](repeating: 0, count: 8))
        }
        let isaBus: UInt8 = 0
        add([EntryType.bus, isaBus] + Array("ISA   ".utf8))
        add([EntryType.ioAPIC, ioAPIC.id, Self.ioAPICVersion, 1] + littleEndianBytes(ioAPIC.address))
        // Flags 0: polarity and trigger conform to the bus (ISA: edge, active high).
        func ioInterrupt(_ type: UInt8, irq: UInt8, pin: UInt8) -> [UInt8] {
            [EntryType.ioInterrupt, type, 0, 0, isaBus, irq, ioAPIC.id, pin]
        }
        add(ioInterrupt(InterruptType.extINT, irq: 0, pin: 0))
        add(ioInterrupt(InterruptType.vectored, irq: 0, pin: 2))
        for irq in UInt8(1)..<max(ioAPICPins, 16) where irq != 2 {
            add(ioInterrupt(InterruptType.vectored, irq: irq, pin: irq))
        }
        let allProcessors: UInt8 = 0xff
        add([EntryType.localInterrupt, InterruptType.extINT, 0, 0, isaBus, 0, allProcessors, 0])
        add([EntryType.localInterrupt, InterruptType.nmi, 0, 0, isaBus, 0, allProcessors, 1])

        var header: [UInt8] = Array("PCMP".utf8)
        header += littleEndianBytes(UInt16(Self.headerBytes + entries.count)) + [Self.specificationRevision, 0]
        header += Array("EBBVMM  ".utf8) + Array("EBB MACHINE ".utf8)   // OEM id (8), product id (12)
        header += littleEndianBytes(UInt32(0)) + littleEndianBytes(UInt16(0))   // no OEM table
        header += littleEndianBytes(UInt16(count)) + littleEndianBytes(localAPICAddress)
        header += littleEndianBytes(UInt16(0)) + [0, 0]   // no extended entries
        var table = header + entries
        table[7] = checksum(table)
        return table
    }
}
