#if canImport(Glibc)
import Glibc
#endif
import Virtio

/// The thread that serves one virtio device: it waits on the device's queue notifiers (rung by KVM
/// when the guest writes QueueNotify) and runs the device's timers, so queue work such as
/// discarding reported memory never runs on a vCPU thread.
final class VirtioEventLoop: @unchecked Sendable {
    static let tickMilliseconds: Int32 = 50

    private let transport: VirtioMMIOTransport
    private let queueNotifiers: [EventNotifier]
    private let stopNotifier: EventNotifier
    private var thread: OSThread?

    init(transport: VirtioMMIOTransport, queueNotifiers: [EventNotifier]) throws {
        self.transport = transport
        self.queueNotifiers = queueNotifiers
        self.stopNotifier = try EventNotifier()
    }

    func start(name: String) throws {
        let (transport, notifiers, stop) = (self.transport, self.queueNotifiers, self.stopNotifier)
        thread = try OSThread(name: name) {
            var fds = ([stop] + notifiers).map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            while true {
                let ready = poll(&fds, nfds_t(fds.count), Self.tickMilliseconds)
                if ready < 0 && errno != EINTR { return }
                if fds[0].revents != 0 { return }
                for (queue, notifier) in notifiers.enumerated() where fds[queue + 1].revents != 0 {
                    notifier.consume()
                    transport.notify(queue: queue)
                }
                transport.tick()
            }
        }
    }

    func stop() {
        stopNotifier.signal()
        thread?.join()
        thread = nil
    }
}
