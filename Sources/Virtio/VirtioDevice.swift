import GuestMemory
import Seccomp

/// A virtio device model behind a transport. The transport owns it behind a `Mutex` and serializes
/// every call, so a device keeps plain mutable state, need not be `Sendable`, and is reached from
/// outside only through `VirtioMMIOTransport.withDevice`.
///
/// Adding a device: a folder under `Sources/Virtio/` with a type conforming to this protocol, and
/// one case in the VMM's `VirtioDeviceConfiguration` that creates it.
public protocol VirtioDevice: AnyObject {
    /// How the device is named in Ebb's messages ("virtio-balloon").
    var name: String { get }
    var deviceID: UInt32 { get }
    var offeredFeatures: UInt64 { get }
    /// How many queues exist with these features (virtio numbers only the negotiated ones).
    func queueCount(features: UInt64) -> Int
    /// QueueSizeMax of queue `index`.
    func maximumQueueSize(queue index: Int) -> UInt16
    /// `count` bytes of config space from `offset` (zeros past its end).
    func readConfig(offset: UInt64, count: Int) -> [UInt8]
    /// The driver wrote `bytes` at `offset` of config space (guest RAM at hand, for a device whose
    /// config writes say that work is over).
    func writeConfig(offset: UInt64, bytes: [UInt8], memory: GuestMemory)
    /// The driver set DRIVER_OK with these features.
    func activate(features: UInt64)
    /// Consumes what the driver made available on queue `index`; returns whether any chain was
    /// returned to the driver (so a used-buffer interrupt is due). Throw only for a broken ring
    /// (the device then needs a reset); a bad request is answered in the request itself.
    func process(queueIndex: Int, queue: inout SplitQueue, memory: GuestMemory) throws(QueueError) -> Bool
    /// How often the device's thread calls `tick`; nil: never, so an idle device wakes no one.
    var tickInterval: Duration? { get }
    /// Timed work; same contract as `process`, for every active queue.
    func tick(queues: inout [SplitQueue?], memory: GuestMemory) throws(QueueError) -> Bool
    /// Host file descriptors the device's thread waits on beside the queues (a tap), edge-triggered.
    var hostEventSources: [Int32] { get }
    /// Source `source` became readable: take from it until it would block or until the guest's
    /// buffers run out (a queue notification then carries on). Same contract as `process`.
    func hostEvent(source: Int, queues: inout [SplitQueue?], memory: GuestMemory) throws(QueueError) -> Bool
    /// Whether the driver's notifications of queue `index` are served on the vCPU that wrote
    /// them rather than by the device's thread: for requests the driver waits on with nothing
    /// else to do, which cost the device little. The vCPU finds the request done when it goes
    /// back into the guest; through an ioeventfd it would wake the device's thread, and the
    /// guest would halt until that thread's interrupt woke it again.
    func servesOnVCPU(queue index: Int) -> Bool
    /// The driver reset the device: forget everything negotiated.
    func reset()
    /// The system calls the device's thread makes for it beyond its event loop's own (reading
    /// its image, writing its tap, discarding memory): the device's part of that thread's
    /// seccomp filter.
    var hostSystemCalls: [SyscallRule] { get }
}

extension VirtioDevice {
    /// Config space the driver may not write: writes are ignored.
    public func writeConfig(offset: UInt64, bytes: [UInt8], memory: GuestMemory) {}
    public var tickInterval: Duration? { nil }
    public func tick(queues: inout [SplitQueue?], memory: GuestMemory) throws(QueueError) -> Bool { false }
    public var hostEventSources: [Int32] { [] }
    public func servesOnVCPU(queue index: Int) -> Bool { false }
    public var hostSystemCalls: [SyscallRule] { [] }
    public func hostEvent(source: Int, queues: inout [SplitQueue?], memory: GuestMemory) throws(QueueError) -> Bool { false }
}
