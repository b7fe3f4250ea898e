#if canImport(Glibc)
import Glibc
#endif

/// The kind of KVM Ebb runs on, decided once per process: every workaround Ebb applies for a host
/// follows from it, so no other code asks which KVM this is.
public enum HostProfile: Sendable, Equatable {
    /// VT-x or AMD-V (kvm_intel, kvm_amd, and kvm_amd inside QEMU's emulator): guests run as on
    /// hardware and Ebb applies no workaround.
    case hardwareVirtualization
    /// kvm_pvm, the nested pagetable-based KVM without VT-x/AMD-V of this project's development and
    /// CI hosts: guest kernel code is emulated instruction by instruction, some instructions stop
    /// the vCPU, and Linux user space cannot run (docs/hosts.md).
    case pagetableVirtualization

    /// This host's profile: kvm_pvm when its module is loaded, hardware virtualization otherwise.
    public static let current: HostProfile =
        access("/sys/module/kvm_pvm", F_OK) == 0 ? .pagetableVirtualization : .hardwareVirtualization

    /// One line for the log.
    public var description: String {
        switch self {
        case .hardwareVirtualization: "hardware virtualization (VT-x/AMD-V): no workarounds"
        case .pagetableVirtualization:
            "kvm_pvm (nested, no VT-x/AMD-V): guest kernel code is emulated, so unmodified kernels run slowly or not at all; Ebb adds Linux's kvm_pvm options, hides PV IPIs and turns int3 into #BP"
        }
    }

    /// Linux needs kernel options to boot here (CPUID masking by the VMM has no effect on kvm_pvm).
    public var needsGuestKernelOptions: Bool { self == .pagetableVirtualization }
    /// KVM's PV IPI and sched-yield hypercalls leave a Linux AP in `vmcall` here.
    public var hidesPVIPIs: Bool { self == .pagetableVirtualization }
    /// `int3` at CPL0 is an emulation failure here, which Ebb turns into the #BP a CPU raises.
    public var emulatesBreakpoints: Bool { self == .pagetableVirtualization }
}
