import Foundation
import Testing

/// Debian's stock, unmodified kernel, as `guest/fetch-debian-linux.sh` fetched it.
func debianGuest() throws -> (vmlinux: String, bzImage: String) {
    let cache = ProcessInfo.processInfo.environment["EBB_CACHE"] ?? (NSHomeDirectory() + "/.cache/ebb")
    let directory = cache + "/debian-linux/current"
    let paths = (directory + "/vmlinux", directory + "/vmlinuz")
    guard FileManager.default.fileExists(atPath: paths.0) else {
        throw TestFailure("Debian's kernel is not fetched: run guest/fetch-debian-linux.sh (scripts/test does)")
    }
    return paths
}

/// The stock kernel cannot get far on kvm_pvm (it emulates kernel code), but far enough to show it
/// accepts Ebb's boot protocol, e820 map and ACPI tables.
@Suite(.enabled(if: kvmAvailable, kvmSkipReason), .serialized)
struct StockLinuxTests {
    /// Kernel options this host's KVM needs (docs/hosts.md); harmless elsewhere.
    static let hostOptions = "noxsave clearcpuid=popcnt,smap tsc=reliable"

    @Test func debianKernelParsesE820AndACPITablesAndFindsCPUsFromMADT() throws {
        let guest = try debianGuest()
        let started = Date()
        let ebb = try EbbProcess(["run", "--kernel", guest.vmlinux, "--memory", "512M", "--cpus", "2",
                                  "--cmdline", "console=ttyS0 earlyprintk=ttyS0 \(Self.hostOptions)"])
        let expected = [
            "BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] usable",
            "BIOS-e820: [mem 0x0000000000100000-0x000000001fffffff] usable",
            "ACPI: RSDP 0x00000000000E0000 000024 (v02 EBBVMM)",
            "ACPI: XSDT 0x", "ACPI: FACP 0x", "ACPI: DSDT 0x", "ACPI: APIC 0x",
            "IOAPIC[0]: apic_id 2, version 17, address 0xfec00000, GSI 0-23",
            "ACPI: Using ACPI (MADT) for SMP configuration information",
            "smpboot: Allowing 2 CPUs, 0 hotplug CPUs",
        ]
        let reached = ebb.wait(seconds: 240) { output in expected.allSatisfy(output.contains) }
        let seconds = Date().timeIntervalSince(started)
        ebb.signal(SIGTERM)
        let result = ebb.finish(seconds: 20)
        print("stock Linux: reached the MADT CPU count after \(String(format: "%.1f", seconds)) s")
        #expect(reached, "missing: \(expected.filter { !result.stdout.contains($0) })\n\(result.stdout.suffix(3000))\n\(result.stderr)")
        #expect(result.status == 128 + SIGTERM, "\(result.stderr)")
    }
}
