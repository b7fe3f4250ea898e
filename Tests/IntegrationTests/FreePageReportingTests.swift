import Foundation
import Testing

/// Free page reporting with real KVM, real guest RAM and the host RSS of the `ebb` process: the
/// test kernel touches 512 MiB of a 1 GiB guest at user level, frees it and reports it.
@Suite(.enabled(if: kvmAvailable, kvmSkipReason), .serialized)
struct FreePageReportingTests {
    struct Observation {
        let result: EbbProcess.Result
        let peakBytes: UInt64
        let afterDoneBytes: UInt64
        let baselineBytes: UInt64
    }

    /// Runs the reclaim scenario, sampling ebb's RSS from outside until the guest powers off.
    func reclaim(_ extra: [String] = [], touchMiB: Int = 512, memory: String = "1G", cmdline: String = "") throws -> Observation {
        try requireTestKernel()
        let ebb = try EbbProcess(["run", "--kernel", testKernelELF, "--memory", memory,
                                  "--cmdline", "ebb.scenario=reclaim ebb.touch=\(touchMiB) ebb.hold=1 \(cmdline)"] + extra)
        let sampler = RSSSampler(pid: ebb.pid)
        #expect(ebb.wait(seconds: 60) { $0.contains("scenario: reclaim") })
        let baseline = currentRSS(ebb.pid)
        #expect(ebb.wait(seconds: 120) { $0.contains("reclaim: done") || $0.contains("reclaim: reporting not available") })
        // Reporting is synchronous in Ebb: the guest sees its report used only after the discard.
        let afterDone = currentRSS(ebb.pid)
        // The kernel's own high-water mark: sampling alone can miss a peak that lasts a few ms
        // (the touched memory is reported ~20 ms after the touch), as it did on a loaded host.
        let highWater = currentRSS(ebb.pid, field: "VmHWM:")
        let result = ebb.finish(seconds: 60)
        let samples = sampler.stop()
        return Observation(result: result, peakBytes: max(RSSSampler.peak(samples), highWater), afterDoneBytes: afterDone, baselineBytes: baseline)
    }

    func currentRSS(_ pid: Int32, field: String = "VmRSS:") -> UInt64 {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field) }),
              let kilobytes = UInt64(line.split(whereSeparator: { $0 == " " || $0 == "\t" })[1]) else { return 0 }
        return kilobytes * 1024
    }

    @Test func reportedMemoryLeavesTheHostProcess() throws {
        let run = try reclaim()
        let touched: UInt64 = 512 * mebibyte
        #expect(run.result.status == 0, "\(run.result.stderr)")
        #expect(run.result.stdout.contains("reclaim: touched 512 MiB"), "\(run.result.stdout)")
        #expect(run.result.stdout.contains("reclaim: reported 256 blocks (512 MiB)"))
        #expect(run.peakBytes >= run.baselineBytes + touched * 95 / 100, "peak \(run.peakBytes / mebibyte) MiB, baseline \(run.baselineBytes / mebibyte) MiB")
        let fell = run.peakBytes - min(run.afterDoneBytes, run.peakBytes)
        #expect(fell >= touched * 95 / 100, "RSS fell \(fell / mebibyte) MiB of \(touched / mebibyte) MiB: peak \(run.peakBytes / mebibyte), after \(run.afterDoneBytes / mebibyte)")
        #expect(run.result.stderr.contains("free page reporting: 256 ranges, 512 MiB reported, 512 MiB discarded, 0 failures"), "\(run.result.stderr)")
    }

    @Test func withReportingOffMemoryStaysResident() throws {
        let run = try reclaim(["--free-page-reporting", "off"], touchMiB: 256, memory: "512M")
        #expect(run.result.status == 0, "\(run.result.stderr)")
        #expect(run.result.stdout.contains("reclaim: reporting not available"), "\(run.result.stdout)")
        #expect(run.peakBytes >= run.baselineBytes + 240 * mebibyte)
        #expect(run.afterDoneBytes >= run.peakBytes - 16 * mebibyte, "RSS fell without reporting: peak \(run.peakBytes / mebibyte) MiB, after \(run.afterDoneBytes / mebibyte) MiB")
    }

    /// A smaller reporting order means smaller blocks, as WSL2 configures Linux (order 5).
    @Test func reportingOrderReachesTheGuest() throws {
        let run = try reclaim(["--reporting-order", "5"], touchMiB: 64, memory: "256M")
        #expect(run.result.status == 0, "\(run.result.stderr)")
        #expect(run.result.stdout.contains("reclaim: reported 512 blocks (64 MiB)"), "\(run.result.stdout)")
        #expect(run.result.stderr.contains("512 ranges, 64 MiB reported, 64 MiB discarded"))
    }

    /// The README's main command: `ebb run` alone runs the demo and the memory comes back.
    @Test func theDemoShowsMemoryComingBack() throws {
        try requireTestKernel()
        let ebb = try EbbProcess(["run"])
        let sampler = RSSSampler(pid: ebb.pid)
        let result = ebb.finish(seconds: 120)
        let samples = sampler.stop()
        #expect(result.status == 0, "\(result.stderr)")
        let peak = RSSSampler.peak(samples)
        guard let peakIndex = samples.firstIndex(where: { $0.residentBytes == peak }) else { Issue.record("no samples"); return }
        let before = samples.first?.residentBytes ?? 0
        let after = samples[peakIndex...].map(\.residentBytes).min() ?? peak
        #expect(peak - after >= (peak - before) * 90 / 100, "grew \((peak - before) / mebibyte) MiB, fell \((peak - after) / mebibyte) MiB")
        #expect(result.stderr.contains("host RSS"), "progress lines: \(result.stderr)")
    }
}
