import Foundation
import Testing

/// The full scenario with Debian's kernel and user space: only where KVM has hardware
/// virtualization (kvm_pvm cannot run Linux user space: `syscall` never reaches the kernel).
@Suite(.enabled(if: kvmAvailable && !isPagetableKVM,
                "needs hardware virtualization (VT-x/AMD-V): /dev/kvm here is kvm_pvm, which cannot run Linux user space"))
struct HardwareHostTests {
    @Test func debianUserSpaceFreesMemoryAndTheHostGetsItBack() throws {
        let guest = try debianGuest()
        let initramfs = (guest.bzImage as NSString).deletingLastPathComponent + "/initramfs.cpio.gz"
        let ebb = try EbbProcess(["run", "--kernel", guest.bzImage, "--initrd", initramfs, "--memory", "1G",
                                  "--cmdline", "console=ttyS0 ebb.scenario=reclaim ebb.touch=512 ebb.hold=20"])
        let sampler = RSSSampler(pid: ebb.pid, interval: 0.1)
        #expect(ebb.wait(seconds: 120) { $0.contains("reclaim: touched 512 MiB") }, "\(ebb.stdout)")
        let touched = RSSSampler.peak(sampler.stop())
        let watcher = RSSSampler(pid: ebb.pid, interval: 0.1)
        #expect(ebb.wait(seconds: 120) { $0.contains("reclaim: done") }, "\(ebb.stdout)")
        let lowest = watcher.stop().map(\.residentBytes).min() ?? touched
        let result = ebb.finish(seconds: 60)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(touched - min(lowest, touched) >= 400 * mebibyte, "RSS \(touched / mebibyte) MiB after the touch, lowest \(lowest / mebibyte) MiB after")
    }
}
