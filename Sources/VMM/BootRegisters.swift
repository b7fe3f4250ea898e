import CKVM
import GuestMemory
import KVM

/// The boot vCPU's registers for each entry protocol, and the GDT they point into.
enum BootRegisters {
    /// GDT selectors. The Linux 64-bit protocol wants __BOOT_CS = 0x10 and __BOOT_DS = 0x18.
    enum Selector {
        static let code32: UInt16 = 0x08
        static let code64: UInt16 = 0x10
        static let data: UInt16 = 0x18
        static let tss: UInt16 = 0x20
    }

    /// Flat 4 GiB descriptors: null, 32-bit code, 64-bit code, data, 32-bit busy TSS.
    static let gdt: [UInt64] = [
        0,
        0x00cf_9b00_0000_ffff,
        0x00af_9b00_0000_ffff,
        0x00cf_9300_0000_ffff,
        0x0000_8b00_0000_0067,
    ]

    enum Control {
        static let protectionEnable: UInt64 = 1 << 0
        static let extensionType: UInt64 = 1 << 4
        static let numericError: UInt64 = 1 << 5
        static let writeProtect: UInt64 = 1 << 16
        static let paging: UInt64 = 1 << 31
        static let pae: UInt64 = 1 << 5
        static let longModeEnable: UInt64 = 1 << 8
        static let longModeActive: UInt64 = 1 << 10
    }

    static func writeGDT(into memory: GuestMemory) throws {
        var bytes: [UInt8] = []
        for descriptor in gdt { withUnsafeBytes(of: descriptor.littleEndian) { bytes += $0 } }
        try memory.write(bytes, at: GuestAddress(Layout.gdtAddress))
    }

    static func apply(_ entry: BootEntry, to vcpu: VCPU) throws {
        var sregs = try vcpu.specialRegisters()
        sregs.gdt.base = Layout.gdtAddress
        sregs.gdt.limit = UInt16(gdt.count * 8 - 1)
        sregs.idt.base = 0
        sregs.idt.limit = 0
        sregs.tr = segment(selector: Selector.tss, type: 11, system: false, limit: 0x67, granular: false, defaultSize: false)
        var regs = kvm_regs()
        regs.rflags = 0x2 // bit 1 is reserved and always set
        regs.rsp = Layout.bootStackTop
        regs.rbp = Layout.bootStackTop

        switch entry {
        case let .longMode(address, bootParams):
            let data = segment(selector: Selector.data, type: 3)
            var code = segment(selector: Selector.code64, type: 11)
            code.l = 1
            code.db = 0
            sregs.cs = code
            (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data)
            sregs.cr3 = Layout.pml4Address
            sregs.cr4 |= Control.pae
            sregs.cr0 = Control.protectionEnable | Control.extensionType | Control.numericError | Control.writeProtect | Control.paging
            sregs.efer |= Control.longModeEnable | Control.longModeActive
            regs.rip = address
            regs.rsi = bootParams

        case let .pvh(address, startInfo):
            let data = segment(selector: Selector.data, type: 3)
            sregs.cs = segment(selector: Selector.code32, type: 11)
            (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data)
            sregs.cr0 = Control.protectionEnable | Control.extensionType
            sregs.cr4 = 0
            sregs.efer = 0
            regs.rip = address
            regs.rbx = startInfo
        }
        try vcpu.setSpecialRegisters(sregs)
        try vcpu.setRegisters(regs)
    }

    /// A flat, present segment; `system: true` is a code/data segment (the S bit).
    static func segment(selector: UInt16, type: UInt8, system: Bool = true, limit: UInt32 = 0xffff_ffff,
                        granular: Bool = true, defaultSize: Bool = true) -> kvm_segment {
        var segment = kvm_segment()
        segment.base = 0
        segment.limit = limit
        segment.selector = selector
        segment.type = type
        segment.present = 1
        segment.dpl = 0
        segment.db = defaultSize ? 1 : 0
        segment.s = system ? 1 : 0
        segment.l = 0
        segment.g = granular ? 1 : 0
        return segment
    }
}
