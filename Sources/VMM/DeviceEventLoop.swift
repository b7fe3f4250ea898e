#if canImport(Glibc)
import Glibc
#endif
import CKVM
import Virtio

/// The thread that serves one virtio device, with an epoll set of everything it waits on: a stop
/// doorbell, the device's queue notifiers (rung by KVM when the guest writes QueueNotify), a
/// timerfd when the device has timed work, and the device's own host descriptors (a tap). Nothing else wakes it: an idle guest costs no host CPU
/// (the loop this replaced woke every device 20 times a second). Queue work such as discarding
/// reported memory never runs on a vCPU thread.
final class DeviceEventLoop: @unchecked Sendable {
    private enum Source: Equatable {
        case stop
        case queue(Int)
        case timer
        case host(Int)
    }
    /// Tokens from here on are the device's host sources.
    private static let hostTokenBase: UInt64 = 1 << 32

    private let transport: VirtioMMIOTransport
    private let queueNotifiers: [EventNotifier]
    private let stopNotifier: EventNotifier
    private let timer: IntervalTimer?
    private let poller: EventPoller
    private var thread: OSThread?

    init(transport: VirtioMMIOTransport, queueNotifiers: [EventNotifier]) throws {
        self.transport = transport
        self.queueNotifiers = queueNotifiers
        stopNotifier = try EventNotifier()
        timer = try transport.tickInterval.map { try IntervalTimer(interval: $0) }
        poller = try EventPoller()
        try poller.add(stopNotifier.fd, token: 0)
        for (queue, notifier) in queueNotifiers.enumerated() { try poller.add(notifier.fd, token: UInt64(queue) + 2) }
        if let timer { try poller.add(timer.fd, token: 1) }
        for (index, fd) in transport.hostEventSources.enumerated() { try poller.addEdgeTriggered(fd, token: Self.hostTokenBase + UInt64(index)) }
    }

    private static func source(of token: UInt64) -> Source {
        switch token {
        case 0: .stop
        case 1: .timer
        case hostTokenBase...: .host(Int(token - hostTokenBase))
        default: .queue(Int(token - 2))
        }
    }

    func start(name: String) throws {
        let (transport, notifiers, timer, poller) = (self.transport, self.queueNotifiers, self.timer, self.poller)
        let role = ThreadRole.device(transport.name)
        thread = try OSThread(name: name, role: role) {
            Sandbox.confineThisThread(as: role, deviceCalls: transport.hostSystemCalls)
            // Filled by each wait (its first `ready`): one array for the thread's life, not one a wait.
            var tokens = [UInt64](repeating: 0, count: Int(EBB_EPOLL_BATCH))
            while true {
                var ready: Int
                do { ready = try poller.wait(into: &tokens, timeoutMilliseconds: -1) } catch { return }
                // What the work just done set off is often ready at once (the tap holds the reply
                // to a frame just sent): served before the interrupt, so that the guest takes one
                // interrupt for both, not one for each. A few passes at most: a source that is
                // always ready must not hold the interrupt back.
                var interruptDue = false
                for pass in 1...Self.passesPerInterrupt {
                    for token in tokens[..<ready] {
                        switch Self.source(of: token) {
                        case .stop:
                            return
                        case let .queue(index) where index < notifiers.count:
                            notifiers[index].consume()
                            if transport.notify(queue: index, holdingInterrupt: true) { interruptDue = true }
                        case .queue:
                            break
                        case .timer:
                            timer?.consume()
                            if transport.tick(holdingInterrupt: true) { interruptDue = true }
                        case let .host(index):
                            if transport.hostEvent(source: index, holdingInterrupt: true) { interruptDue = true }
                        }
                    }
                    guard interruptDue, pass < Self.passesPerInterrupt else { break }
                    do { ready = try poller.wait(into: &tokens, timeoutMilliseconds: 0) } catch { break }
                    if ready == 0 { break }
                }
                if interruptDue { transport.raiseHeldInterrupt() }
            }
        }
    }

    /// Rounds of events served before a due interrupt is raised.
    static let passesPerInterrupt = 3

    /// The device's timed work every `interval` from now on, the first at once (PATCH
    /// /balloon/statistics: "the first statistics update scheduled immediately").
    func restartTimer(interval: Duration) throws {
        try timer?.set(period: interval, first: .nanoseconds(1))
    }

    func stop() {
        stopNotifier.signal()
        thread?.join()
        thread = nil
    }
}

/// An epoll set: file descriptors registered with a token, readiness reported as tokens.
final class EventPoller: Sendable {
    let fd: Int32

    init() throws {
        fd = ebb_epoll_create()
        guard fd >= 0 else { throw SystemError(operation: "epoll_create1", errno: errno) }
    }

    deinit { close(fd) }

    func add(_ source: Int32, token: UInt64) throws {
        guard ebb_epoll_add(fd, source, token) == 0 else {
            throw SystemError(operation: "epoll_ctl(add \(source))", errno: errno)
        }
    }

    /// Edge-triggered: one report per arrival, so a source the device cannot drain yet (no guest
    /// buffers) does not wake the thread again and again.
    func addEdgeTriggered(_ source: Int32, token: UInt64) throws {
        guard ebb_epoll_add_edge(fd, source, token) == 0 else {
            throw SystemError(operation: "epoll_ctl(add \(source))", errno: errno)
        }
    }

    /// The sources readable now, as many as `tokens` holds at most (up to EBB_EPOLL_BATCH), into
    /// its first elements; their count. Waits up to `timeoutMilliseconds` (-1: until one is) for
    /// the first; EINTR is retried.
    func wait(into tokens: inout [UInt64], timeoutMilliseconds: Int32) throws -> Int {
        precondition(tokens.count >= Int(EBB_EPOLL_BATCH))
        while true {
            let count = tokens.withUnsafeMutableBufferPointer { ebb_epoll_wait(fd, $0.baseAddress, timeoutMilliseconds) }
            if count >= 0 { return Int(count) }
            guard errno == EINTR else { throw SystemError(operation: "epoll_wait", errno: errno) }
        }
    }
}

/// A periodic timerfd (CLOCK_MONOTONIC): readable once per elapsed interval.
final class IntervalTimer: Sendable {
    let fd: Int32

    init(interval: Duration) throws {
        fd = ebb_timerfd_create()
        guard fd >= 0 else { throw SystemError(operation: "timerfd_create", errno: errno) }
        // On a throw here deinit still runs (every property is set) and closes the fd.
        try set(period: interval, first: interval)
    }

    /// A new period, its first expiry `first` from now (any thread may call it).
    func set(period: Duration, first: Duration) throws {
        // A zero time would disarm the timer: a nanosecond is the shortest.
        func parts(_ duration: Duration) -> (Int, Int) {
            let (seconds, attoseconds) = duration.components
            return (Int(seconds), Int(max(attoseconds / 1_000_000_000, seconds == 0 ? 1 : 0)))
        }
        let (firstSeconds, firstNanoseconds) = parts(first), (seconds, nanoseconds) = parts(period)
        guard ebb_timerfd_set(fd, firstSeconds, firstNanoseconds, seconds, nanoseconds) == 0 else {
            throw SystemError(operation: "timerfd_settime", errno: errno)
        }
    }

    deinit { close(fd) }

    /// Clears the expiry count.
    func consume() {
        var expirations: UInt64 = 0
        _ = read(fd, &expirations, 8)
    }
}
