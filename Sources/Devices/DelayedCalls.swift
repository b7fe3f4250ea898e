/// Work a device wants done a little later, off the thread that asked (the i8042 raises the
/// interrupt for its next byte after the guest's read returns). The machine gives each device one
/// timer thread for this, created before the guest runs, so a vCPU never starts a thread.
public protocol DelayedCalls: Sendable {
    func call(after delay: Duration, _ work: @escaping @Sendable () -> Void)
}
