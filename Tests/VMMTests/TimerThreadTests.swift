import Synchronization
import Testing
@testable import VMM

/// The devices' timer thread: calls run at their deadlines in deadline order, a call may ask for
/// another, and what is pending is bounded (`TimerThread.maximumPending`).
@Suite struct TimerThreadTests {
    final class Log: Sendable {
        let entries = Mutex<[Int]>([])
        func record(_ value: Int) { entries.withLock { $0.append(value) } }
        var values: [Int] { entries.withLock { $0 } }
    }

    private func waitFor(_ log: Log, count: Int) async throws {
        for _ in 0..<400 where log.values.count < count { try await Task.sleep(for: .milliseconds(5)) }
    }

    @Test func callsRunInDeadlineOrderNotInTheOrderAsked() async throws {
        let timers = TimerThread()
        try timers.start()
        defer { timers.stop() }
        let log = Log()
        timers.call(after: .milliseconds(60)) { log.record(3) }
        timers.call(after: .milliseconds(20)) { log.record(1) }
        timers.call(after: .milliseconds(40)) { log.record(2) }
        try await waitFor(log, count: 3)
        #expect(log.values == [1, 2, 3])
    }

    @Test func aCallMayAskForAnother() async throws {
        let timers = TimerThread()
        try timers.start()
        defer { timers.stop() }
        let log = Log()
        timers.call(after: .milliseconds(5)) {
            log.record(1)
            timers.call(after: .milliseconds(5)) { log.record(2) }
        }
        try await waitFor(log, count: 2)
        #expect(log.values == [1, 2])
    }

    @Test func callsBeyondTheBoundAreDropped() async throws {
        let timers = TimerThread()
        let log = Log()
        // Asked before the thread runs, so all of them are pending at once.
        for index in 0..<(TimerThread.maximumPending + 50) { timers.call(after: .zero) { log.record(index) } }
        try timers.start()
        defer { timers.stop() }
        try await waitFor(log, count: TimerThread.maximumPending)
        try await Task.sleep(for: .milliseconds(50))
        #expect(log.values.count == TimerThread.maximumPending)
        #expect(Set(log.values) == Set(0..<TimerThread.maximumPending), "the first ones asked for are the ones kept")
    }

    @Test func stopEndsTheThreadWithCallsStillPending() throws {
        let timers = TimerThread()
        try timers.start()
        let log = Log()
        timers.call(after: .seconds(60)) { log.record(1) }
        timers.stop()
        #expect(log.values.isEmpty)
    }
}
