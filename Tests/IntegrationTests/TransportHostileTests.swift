import Foundation
import Testing

/// The test kernel attacks the virtio-mmio transport of the balloon and a disk (`transport-hostile`
/// in guest/testkernel/transport_hostile.c): every register written with hostile values at every
/// width in every driver state, every offset read, notifications for queues that do not exist,
/// interrupts never acknowledged, a reset in the middle of a request. Each device must work again
/// after a reset, the other one meanwhile too, and Ebb must end with the guest's power-off.
@Suite(.enabled(if: kvmAvailable, kvmSkipReason))
struct TransportHostileTests {
    @Test func noRegisterAccessInAnyStateTakesEbbOrTheOtherDeviceDown() throws {
        try requireTestKernel()
        let scratch = try DiskScratch("transport")
        let disk = try scratch.image()
        let result = try runEbb(["run", "--kernel", testKernelELF, "--memory", "256M", "--disk", disk,
                                 "--cmdline", "ebb.scenario=transport-hostile"], seconds: 180)
        #expect(result.status == 0, "\(result.stderr)")
        for device in ["balloon", "disk"] {
            for state in ["reset", "acknowledge", "driver", "features-ok", "driver-ok"] {
                #expect(result.stdout.contains("transport: \(device) storm state=\(state) done"), "\(device) \(state): \(result.stdout)")
            }
            #expect(result.stdout.contains("transport: \(device) missing-queue notifies done"), "\(result.stdout)")
        }
        #expect(result.stdout.contains("transport: balloon after the storms works"), "\(result.stdout)")
        #expect(result.stdout.contains("transport: disk after the storms read status=0"), "\(result.stdout)")
        #expect(result.stdout.contains("transport: balloon after the disk's storms works"), "\(result.stdout)")
        // InterruptStatus stays raised, and the device goes on using buffers.
        #expect(result.stdout.contains("transport: no-ack reports=5 used=5 isr=0x1"), "\(result.stdout)")
        #expect(result.stdout.contains("transport: balloon reset mid-request done, then works"), "\(result.stdout)")
        #expect(result.stdout.contains("transport: disk reset mid-request done, then read status=0"), "\(result.stdout)")
        #expect(result.stdout.contains("transport: done"), "\(result.stdout)")
        // The thousands of lines the storms cause are held to Linux's rate.
        #expect(result.stderr.split(separator: "\n").count < 200, "\(result.stderr.split(separator: "\n").count) lines on stderr")
    }
}
