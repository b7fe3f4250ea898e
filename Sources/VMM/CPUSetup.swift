import CKVM
import KVM
import LinuxBoot

/// Per-vCPU state every vCPU needs before it first runs: CPUID, MSRs, FPU and the local APIC's
/// legacy interrupt pins. The boot vCPU additionally gets `BootRegisters`.
struct CPUSetup {
    let supportedCPUID: [kvm_cpuid_entry2]
    let cpuCount: Int
    /// Hide paravirtual features this host's KVM cannot deliver (see `hiddenPVFeatures`).
    var hidePVSendIPI = HostProfile.current.hidesPVIPIs

    enum CPUIDLeaf {
        static let features: UInt32 = 0x1
        static let extendedTopology: UInt32 = 0xb
        static let extendedTopologyV2: UInt32 = 0x1f
        /// KVM_CPUID_FEATURES: the paravirtual features KVM offers a guest.
        static let kvmFeatures: UInt32 = 0x4000_0001
    }

    /// KVM_FEATURE_PV_SEND_IPI and KVM_FEATURE_PV_SCHED_YIELD (bits 11 and 13 of
    /// KVM_CPUID_FEATURES.EAX): hypercalls (`vmcall`) in place of APIC IPIs. On kvm_pvm a Linux guest
    /// using them never brings up its second CPU (measured: the AP sits in `vmcall` and the boot CPU
    /// spins at "Booting SMP configuration"), so Ebb hides both there and Linux uses the APIC.
    static let hiddenPVFeatures: UInt32 = 1 << 11 | 1 << 13

    /// CPUID.1:ECX bit 31, "running under a hypervisor".
    static let hypervisorPresent: UInt32 = 1 << 31

    /// MSR numbers (Intel SDM vol. 4) and the values a freshly reset CPU would have.
    enum MSR {
        static let tsc: UInt32 = 0x10
        static let sysenterCS: UInt32 = 0x174
        static let sysenterESP: UInt32 = 0x175
        static let sysenterEIP: UInt32 = 0x176
        static let miscEnable: UInt32 = 0x1a0
        static let star: UInt32 = 0xc000_0081
        static let lstar: UInt32 = 0xc000_0082
        static let cstar: UInt32 = 0xc000_0083
        static let syscallMask: UInt32 = 0xc000_0084
        static let kernelGSBase: UInt32 = 0xc000_0102
        /// IA32_MISC_ENABLE.FAST_STRING: lets `rep movs` use fast strings, as firmware sets it.
        static let miscEnableFastString: UInt64 = 1
    }

    /// Local APIC register offsets and LVT delivery modes.
    enum APIC {
        static let lint0 = 0x350
        static let lint1 = 0x360
        static let deliveryModeMask: UInt32 = 0x700
        static let extINT: UInt32 = 0x700
        static let nmi: UInt32 = 0x400
    }

    func configure(_ vcpu: VCPU) throws {
        try vcpu.setCPUID(cpuid(for: vcpu.id))
        try vcpu.setMSRs([
            (MSR.sysenterCS, 0), (MSR.sysenterESP, 0), (MSR.sysenterEIP, 0),
            (MSR.star, 0), (MSR.lstar, 0), (MSR.cstar, 0), (MSR.syscallMask, 0), (MSR.kernelGSBase, 0),
            (MSR.tsc, 0), (MSR.miscEnable, MSR.miscEnableFastString),
        ])
        var fpu = kvm_fpu()
        fpu.fcw = 0x37f      // x87 control word after FNINIT
        fpu.mxcsr = 0x1f80   // all SSE exceptions masked
        try vcpu.setFPU(fpu)
        try configureLocalInterruptPins(vcpu)
    }

    /// KVM's supported CPUID with this vCPU's APIC id and the hypervisor bit filled in.
    func cpuid(for apicID: UInt32) -> [kvm_cpuid_entry2] {
        supportedCPUID.map { original in
            var entry = original
            switch entry.function {
            case CPUIDLeaf.features:
                // EBX[31:24] initial APIC id, EBX[23:16] logical processors per package.
                entry.ebx = (entry.ebx & 0x0000_ffff) | (apicID << 24) | (UInt32(min(cpuCount, 255)) << 16)
                entry.ecx |= Self.hypervisorPresent
            case CPUIDLeaf.extendedTopology, CPUIDLeaf.extendedTopologyV2:
                entry.edx = apicID // x2APIC id, on every subleaf
            case CPUIDLeaf.kvmFeatures where hidePVSendIPI:
                entry.eax &= ~Self.hiddenPVFeatures
            default:
                break
            }
            return entry
        }
    }

    /// The MP table for these vCPUs, with the APIC ids, IOAPIC and signature the MADT and CPUID give.
    func mpTable() -> MPTable {
        let features = supportedCPUID.first { $0.function == CPUIDLeaf.features && $0.index == 0 }
        return MPTable(localAPICAddress: UInt32(Layout.localAPICAddress),
                       apicIDs: (0..<cpuCount).map { UInt8($0) },
                       ioAPIC: (id: UInt8(cpuCount), address: UInt32(Layout.ioAPICAddress)),
                       ioAPICPins: UInt8(Layout.ioAPICPins),
                       cpuSignature: features?.eax ?? 0, cpuFeatures: features?.edx ?? 0)
    }

    /// LINT0 delivers the 8259's interrupts (ExtINT), LINT1 the NMI: the wiring of a PC, which
    /// Linux expects before it switches to the IOAPIC.
    private func configureLocalInterruptPins(_ vcpu: VCPU) throws {
        var state = try vcpu.localAPIC()
        withUnsafeMutableBytes(of: &state.regs) { registers in
            func update(_ offset: Int, mode: UInt32) {
                let value = registers.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
                registers.storeBytes(of: (value & ~APIC.deliveryModeMask) | mode, toByteOffset: offset, as: UInt32.self)
            }
            update(APIC.lint0, mode: APIC.extINT)
            update(APIC.lint1, mode: APIC.nmi)
        }
        try vcpu.setLocalAPIC(state)
    }
}
