import GuestMemory

/// A virtio device model behind a transport. The transport serializes every call (it holds its
/// lock), so a device keeps plain mutable state and never sees two calls at once.
public protocol VirtioDevice: AnyObject, Sendable {
    var deviceID: UInt32 { get }
    var offeredFeatures: UInt64 { get }
    var maximumQueueSize: UInt16 { get }
    /// How many queues exist with these features (virtio numbers only the negotiated ones).
    func queueCount(features: UInt64) -> Int
    func readConfig(offset: UInt64, data: UnsafeMutableRawBufferPointer)
    func writeConfig(offset: UInt64, data: UnsafeRawBufferPointer)
    /// The driver set DRIVER_OK with these features.
    func activate(features: UInt64)
    /// Consumes what the driver made available on queue `index`; returns whether any chain was
    /// returned to the driver (so a used-buffer interrupt is due).
    func process(queueIndex: Int, queue: inout SplitQueue, memory: GuestMemory) throws(QueueError) -> Bool
    /// Periodic work (timers); same contract as `process`, for every active queue.
    func tick(queues: inout [SplitQueue?], memory: GuestMemory) throws(QueueError) -> Bool
    /// The driver reset the device: forget everything negotiated.
    func reset()
}
