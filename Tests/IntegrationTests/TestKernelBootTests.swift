import Foundation
import Testing

/// Boots Ebb's own test kernel with real KVM through both entry protocols.
@Suite(.enabled(if: kvmAvailable, kvmSkipReason), .serialized)
struct TestKernelBootTests {
    static let variants: [(kernel: String, boot: String, cpus: Int)] = [
        (testKernelELF, "pvh", 1), (testKernelELF, "pvh", 2),
        (testKernelBzImage, "bzimage", 1), (testKernelBzImage, "bzimage", 2),
    ]

    @Test(arguments: 0..<variants.count)
    func bootsFindsACPIDevicesAndCPUsAndPowersOff(variant: Int) throws {
        try requireTestKernel()
        let (kernel, boot, cpus) = Self.variants[variant]
        let result = try runEbb(["run", "--kernel", kernel, "--cmdline", "ebb.scenario=hello", "--cpus", "\(cpus)", "--memory", "256M"])
        let out = result.stdout
        #expect(result.status == 0, "ebb exited \(result.status): \(result.stderr)")
        // On kvm_pvm Ebb appends the kernel options Linux needs there; the test kernel ignores them.
        #expect(out.contains("ebb-test-kernel: boot=\(boot) cmdline=\"ebb.scenario=hello"), "\(out)")
        #expect(out.contains("acpi: rsdp=0xe0000 oem=EBBVMM revision=2"))
        #expect(out.contains("acpi: tables: FACP APIC DSDT"))
        #expect(out.contains("acpi: cpus=\(cpus) apic-ids=\((0..<cpus).map(String.init).joined(separator: ","))"))
        #expect(out.contains("acpi: device PNP0501 io=0x3f8 irq=4"))
        #expect(out.contains("cpus online: \(cpus)"))
        if cpus > 1 { #expect(out.contains("cpu 1: online")) }
        #expect(out.contains("poweroff: acpi"))
        #expect(result.stderr.contains("guest powered off"))
    }

    @Test func largeGuestGetsRAMAbove4GiB() throws {
        try requireTestKernel()
        let result = try runEbb(["run", "--kernel", testKernelELF, "--memory", "4G"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("memory: 4 e820 entries, 4095 MiB usable"), "\(result.stdout)")
        #expect(result.stdout.contains("0x0000000100000000-0x000000013fffffff usable"))
    }

    /// With no arguments: the test kernel in the reclaim demo, and no options added to its command line.
    @Test func defaultGuestRunsWithNoArguments() throws {
        try requireTestKernel()
        let result = try runEbb(["run"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("cmdline=\"ebb.scenario=reclaim ebb.touch=512 ebb.hold=2\""), "\(result.stdout)")
        #expect(result.stdout.contains("reclaim: done"))
    }
}

/// How each way a guest can end maps to ebb's exit status.
@Suite(.enabled(if: kvmAvailable, kvmSkipReason), .serialized)
struct GuestExitTests {
    func scenario(_ name: String, cpus: Int = 1) throws -> EbbProcess.Result {
        try requireTestKernel()
        return try runEbb(["run", "--kernel", testKernelELF, "--cmdline", "ebb.scenario=\(name)", "--cpus", "\(cpus)", "--memory", "128M"])
    }

    @Test func i8042ResetExitsWithTwo() throws {
        let result = try scenario("reset")
        #expect(result.status == 2)
        #expect(result.stderr.contains("guest requested a reset"))
    }

    @Test func acpiResetRegisterExitsWithTwo() throws {
        #expect(try scenario("acpi-reset").status == 2)
    }

    @Test func tripleFaultExitsWithThree() throws {
        let result = try scenario("triple-fault", cpus: 2)
        #expect(result.status == 3)
        #expect(result.stderr.contains("triple fault on vCPU 0"))
    }

    /// int3 at CPL0 stops kvm_pvm; Ebb steps over it and injects #BP as hardware would.
    @Test func int3ReachesTheGuestsBreakpointHandler() throws {
        let result = try scenario("int3")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("int3: handled rip=0x"))
        #expect(result.stdout.contains("int3: resumed"))
    }

    @Test func unclaimedPortsAndMMIOAreCountedAndIgnored() throws {
        let result = try scenario("bad-io")
        #expect(result.status == 0)
        #expect(result.stdout.contains("bad-io: port 0x80 read 0xff, 0x1234 read 0xff/0xffff, 0xcfc read 0xffffffff"), "\(result.stdout)")
        #expect(result.stdout.contains("bad-io: mmio 0xd8000000 read 0xffffffff"))
        #expect(result.stdout.contains("bad-io: survived"))
        #expect(result.stderr.contains("unclaimed accesses: 8 port, 6 MMIO"), "\(result.stderr)")
    }

    @Test func sigtermStopsARunningGuest() throws {
        try requireTestKernel()
        let ebb = try EbbProcess(["run", "--kernel", testKernelELF, "--cmdline", "ebb.scenario=spin", "--cpus", "2"])
        #expect(ebb.wait(seconds: 30) { $0.contains("spin: forever") })
        ebb.signal(SIGTERM)
        let result = ebb.finish(seconds: 10)
        #expect(result.status == 128 + SIGTERM)
        #expect(result.stderr.contains("stopped by signal 15"))
    }

    @Test func serialConsoleCarriesInputToTheGuest() throws {
        try requireTestKernel()
        let ebb = try EbbProcess(["run", "--kernel", testKernelELF, "--cmdline", "ebb.scenario=echo"])
        #expect(ebb.wait(seconds: 30) { $0.contains("echo: ready") })
        ebb.type("ping q")
        let result = ebb.finish(seconds: 30)
        #expect(result.status == 0)
        #expect(result.stdout.contains("ping q"), "\(result.stdout)")
        #expect(result.stdout.contains("echo: done"))
    }
}
