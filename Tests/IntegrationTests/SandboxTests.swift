import Foundation
import Testing

/// Ebb's seccomp filters in the real binary: every thread confined while a guest with every kind
/// of device runs, and a refused call ending Ebb with 148 and a line that names it.
@Suite(.enabled(if: kvmAvailable, kvmSkipReason))
struct SandboxTests {
    /// `Seccomp:` and `Seccomp_filters:` of each thread of `pid`, by thread name.
    private func confinement(of pid: Int32) throws -> [(thread: String, mode: String, filters: Int)] {
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")
        return try tasks.map { task in
            let status = try String(contentsOfFile: "/proc/\(pid)/task/\(task)/status", encoding: .utf8)
            func field(_ name: String) -> String {
                status.split(separator: "\n").first { $0.hasPrefix(name + ":") }.map { String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces) } ?? ""
            }
            return (field("Name"), field("Seccomp"), Int(field("Seccomp_filters")) ?? 0)
        }
    }

    @Test func everyThreadRunsUnderAFilterWhileTheGuestRuns() throws {
        try requireTestKernel()
        let scratch = try DiskScratch("seccomp")
        let disk = try scratch.image()
        let socket = scratch.directory.appendingPathComponent("api.sock").path
        let ebb = try EbbProcess(["run", "--kernel", testKernelELF, "--cpus", "2", "--memory", "256M", "--disk", disk,
                                  "--api-socket", socket, "--cmdline", "ebb.scenario=echo"])
        #expect(ebb.wait(seconds: 60) { $0.contains("echo: ready") }, "\(ebb.stderr)")
        // The API thread is confined by a task it runs; a request proves it has run it.
        let answer = try unixHTTP(socket, "GET", "/balloon/statistics")
        #expect(answer.status == 200, "\(answer.body)")
        let threads = try confinement(of: ebb.pid)
        ebb.type("q")
        let result = ebb.finish(seconds: 30)
        #expect(result.status == 0, "\(result.stderr)")
        let names = Set(threads.map(\.thread))
        for expected in ["ebb-vcpu0", "ebb-vcpu1", "ebb-virtio0", "ebb-virtio1", "ebb-signals", "ebb-console", "ebb-timers", "ebb-reclaim"] {
            #expect(names.contains(expected), "no \(expected) thread among \(names.sorted())")
        }
        for thread in threads {
            // 2: SECCOMP_MODE_FILTER.
            #expect(thread.mode == "2" && thread.filters >= 1, "\(thread.thread) runs unconfined (Seccomp: \(thread.mode))")
        }
    }

    /// Each list holds only what its thread calls, so no run can be made to step outside one; the
    /// test takes `mincore` (the balloon's count of what a discard returned, the reclaim's and the
    /// memory monitor's of guest RAM resident) out of every list: whichever thread calls it first
    /// stops Ebb.
    @Test func aRefusedCallStopsEbbWithStatus148AndNamesTheCall() throws {
        try requireTestKernel()
        let arguments = ["run", "--kernel", testKernelELF, "--memory", "256M", "--cmdline", "ebb.scenario=reclaim ebb.touch=64 ebb.hold=1"]
        let refused = try runEbb(arguments + ["--seccomp", "on"], environment: ["EBB_SECCOMP_DENY": "mincore"])
        #expect(refused.status == 148, "\(refused.stderr)")
        #expect(refused.stderr.range(of: #"ebb: seccomp: the [a-z -]+ thread called mincore \(system call 27\), which its filter refuses"#,
                                     options: .regularExpression) != nil, "\(refused.stderr)")

        let unconfined = try runEbb(arguments + ["--seccomp", "off"], environment: ["EBB_SECCOMP_DENY": "mincore"])
        #expect(unconfined.status == 0, "\(unconfined.stderr)")
        #expect(!unconfined.stderr.contains("seccomp"), "\(unconfined.stderr)")
    }
}
