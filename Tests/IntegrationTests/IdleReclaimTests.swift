import Foundation
import Testing

/// The agentless reclaim against the test kernel's page-cache model (ebb.scenario=cache): 16 MiB
/// of the guest's own memory and 128 MiB of cache, touched, then nothing. The balloon's
/// inflation evicts the model's cache as Linux's reclaim gives cache up to the balloon, so the
/// host's RSS must fall by about the cache; the test kernel never halts, so Ebb sees a busy guest
/// and squeezes in bounded steps. Debian's own kernel does the same on the emulated host
/// (EmulatedHostTests).
@Suite(.enabled(if: kvmAvailable, kvmSkipReason), .serialized)
struct IdleReclaimTests {
    static let machine = ["run", "--kernel", testKernelELF, "--memory", "256M"]
    static let arguments = machine + ["--idle-reclaim-interval", "1"]
    static let cacheScenario = "ebb.scenario=cache ebb.touch=16 ebb.cache=128 ebb.hold=12"

    /// "host RSS 43.9 MiB (peak 163.8 MiB" from the exit summary, in MiB.
    func residentFigures(_ stderr: String) -> (final: Double, peak: Double)? {
        guard let line = stderr.split(separator: "\n").first(where: { $0.contains("guest powered off; host RSS ") }) else { return nil }
        let numbers = line.split(separator: " ").compactMap { Double($0.trimmingCharacters(in: CharacterSet(charactersIn: "(,"))) }
        guard numbers.count >= 2 else { return nil }
        return (numbers[0], numbers[1])
    }

    @Test func theGuestsCacheGoesBackWithNothingInTheGuest() throws {
        try requireTestKernel()
        let result = try runEbb(Self.arguments + ["--cmdline", Self.cacheScenario])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("cache: touched 144 MiB, cache 128 MiB"), "\(result.stdout)")
        // Squeezed down to the 4 MiB floor plus the margin a busy guest keeps (a thirty-second
        // of its 256 MiB), and the balloon let go at once.
        #expect(result.stdout.contains("cache: now 12 MiB"), "\(result.stdout)")
        #expect(result.stdout.contains("cache: done cache=12 MiB balloon=0 MiB"), "\(result.stdout)")
        #expect(result.stderr.contains("idle reclaim: busy"), "\(result.stderr)")
        // The squeeze for the cache, the one for free pages that follows every cache squeeze, and
        // any for free pages the guest's own figures show.
        let squeezed = result.stderr.range(of: #"[2-9] squeezes returned (1[0-9][0-9](\.[0-9])? MiB)"#, options: .regularExpression)
        #expect(squeezed != nil, "squeezes returning 100-199 MiB: \(result.stderr)")
        let resident = residentFigures(result.stderr)
        #expect(resident != nil, "\(result.stderr)")
        if let resident { #expect(resident.peak - resident.final >= 100, "host RSS \(resident.peak) -> \(resident.final) MiB") }
    }

    @Test func offChangesNothing() throws {
        try requireTestKernel()
        let result = try runEbb(Self.machine + ["--idle-reclaim", "off", "--cmdline", Self.cacheScenario])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("cache: done cache=128 MiB balloon=0 MiB"), "\(result.stdout)")
        #expect(!result.stdout.contains("cache: now"), "\(result.stdout)")
        #expect(!result.stderr.contains("idle reclaim:"), "\(result.stderr)")
        #expect(!result.stderr.contains("pages inflated"), "\(result.stderr)")
    }

    @Test func aUserTargetWinsOverTheSqueeze() throws {
        try requireTestKernel()
        let result = try runEbb(Self.arguments + ["--balloon-target", "64M", "--cmdline", Self.cacheScenario])
        #expect(result.status == 0, "\(result.stderr)")
        // The guest holds the user's 64 MiB and gives nothing more, however long it sits.
        #expect(result.stdout.contains("cache: done cache=") && result.stdout.contains("balloon=64 MiB"), "\(result.stdout)")
        #expect(result.stderr.contains("idle reclaim: user-target"), "\(result.stderr)")
        #expect(result.stderr.contains(", 0 squeezes returned"), "\(result.stderr)")
    }

    @Test func badReclaimOptionsAreOneLineErrors() throws {
        for (arguments, message) in [
            (["--idle-reclaim-interval", "0"], "--idle-reclaim-interval must be 0.1 to 3600 seconds"),
            (["--idle-reclaim-floor", "lots"], "idle reclaim floor 'lots' is not a size"),
            (["--idle-reclaim", "off", "--idle-reclaim-floor", "64M"], "need --idle-reclaim on"),
            (["--idle-reclaim", "maybe"], "maybe"),
        ] {
            let result = try runEbb(["run", "--kernel", testKernelELF] + arguments)
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
    }
}
