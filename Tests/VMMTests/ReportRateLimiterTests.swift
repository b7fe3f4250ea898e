import Testing
@testable import VMM

/// The bound on what a guest can make Ebb print (`GuestReportLimits`), on a simulated clock.
struct ReportRateLimiterTests {
    @Test func aBurstGoesThroughAndTheRestIsCountedUntilTheWindowPasses() {
        var limiter = ReportRateLimiter(burst: 3, interval: .seconds(5))
        let first = (0..<3).map { limiter.admit(at: .milliseconds(100 * $0)) }
        #expect(first == Array(repeating: .print(heldBack: 0), count: 3))
        for step in 0..<100 {
            #expect(limiter.admit(at: .milliseconds(400 + step)) == .holdBack)
        }
        #expect(limiter.heldBack == 100)
        // The first line of the next window says what the last one held back, once.
        #expect(limiter.admit(at: .seconds(5)) == .print(heldBack: 100))
        #expect(limiter.admit(at: .seconds(6)) == .print(heldBack: 0))
        #expect(limiter.heldBack == 0)
    }

    @Test func aSteadyTrickleUnderTheBoundIsNeverHeldBack() {
        var limiter = ReportRateLimiter(burst: 10, interval: .seconds(5))
        for second in 0..<60 {
            #expect(limiter.admit(at: .seconds(second)) == .print(heldBack: 0))
        }
    }

    @Test func whatIsHeldBackAtTheEndIsTakenOnce() {
        var limiter = ReportRateLimiter(burst: 1, interval: .seconds(5))
        _ = limiter.admit(at: .zero)
        _ = limiter.admit(at: .seconds(1))
        _ = limiter.admit(at: .seconds(2))
        #expect(limiter.takeHeldBack() == 2)
        #expect(limiter.takeHeldBack() == 0)
        #expect(limiter.admit(at: .seconds(10)) == .print(heldBack: 0))
    }

    @Test func theDefaultsAreLinuxsPrintkBound() {
        let limiter = ReportRateLimiter()
        #expect(limiter.burst == 10 && limiter.interval == .seconds(5))
        #expect(heldBackLine(7) == "7 more lines the guest caused not printed (at most 10 per 5 s)")
    }
}
