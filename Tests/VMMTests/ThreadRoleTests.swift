import Synchronization
import Testing
@testable import VMM

@Suite struct ThreadRoleTests {
    /// A thread is listed under its role with its kernel thread id while it runs, and its CPU time
    /// can be read; it is gone from the list once it ends.
    @Test func threadsAreListedByRoleWhileTheyRun() throws {
        let seen = Mutex<(listed: Bool, cpuTime: Duration?)>((false, nil))
        let thread = try OSThread(name: "ebb-test", role: .device("test-device")) {
            let mine = ThreadRegistry.threads.first { $0.role == .device("test-device") }
            var spin = 0
            for index in 0..<200_000 { spin &+= index }
            let time = mine.flatMap { ThreadRegistry.cpuTime(threadID: $0.threadID) }
            seen.withLock { $0 = (mine != nil && spin != 1, time) }
        }
        thread.join()
        let (listed, cpuTime) = seen.withLock { $0 }
        #expect(listed)
        #expect((cpuTime ?? .zero) > .zero)
        #expect(!ThreadRegistry.threads.contains { $0.role == .device("test-device") })
        #expect(ThreadRole.vcpu(3).description == "vcpu3")
    }
}
