import KVM

/// Kernel options a Linux guest needs to boot on kvm_pvm, the nested KVM without VT-x/AMD-V of
/// Ebb's CI hosts (docs/hosts.md); Linux obeys these where VMM-side CPUID masking has no
/// effect on this KVM. On other hosts Ebb adds nothing.
enum HostKernelOptions {
    /// The options for this host, or an empty list when none are needed.
    static func options(tscKHz: UInt32?) -> [String] {
        guard HostProfile.current.needsGuestKernelOptions else { return [] }
        var options = [
            "noxsave",                    // else xrstor stops the vCPU
            "clearcpuid=popcnt,smap",     // else popcnt and clac stop the vCPU
            "tsc=reliable",               // else the clocksource falls back to jiffies
        ]
        // Without a usable PIT/HPET reference, TSC calibration hangs: tell Linux the frequency.
        if let tscKHz { options.append("tsc_early_khz=\(tscKHz)") }
        return options
    }

    /// `commandLine` plus each option whose name the user did not already set.
    static func merge(_ options: [String], into commandLine: String) -> (line: String, added: [String]) {
        let present = Set(commandLine.split(separator: " ").map { $0.split(separator: "=").first.map(String.init) ?? "" })
        let added = options.filter { !present.contains(String($0.split(separator: "=")[0])) }
        guard !added.isEmpty else { return (commandLine, []) }
        return ((commandLine.isEmpty ? "" : commandLine + " ") + added.joined(separator: " "), added)
    }
}
