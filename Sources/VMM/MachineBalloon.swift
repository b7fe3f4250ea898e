import Virtio

extension Machine {
    /// The balloon's counters so far, or nil when the machine has no balloon.
    public var balloonCounters: BalloonCounters? {
        guard let balloon else { return nil }
        return balloon.transport.withDevice { balloon.device.counters }
    }

    /// Why the guest broke the balloon, if it did (DEVICE_NEEDS_RESET).
    public var balloonBrokenReason: String? { balloon?.transport.brokenReason }

    /// Asks the guest to hold `bytes` in the balloon; the driver hears of it by a config interrupt.
    public func setBalloonTarget(bytes: UInt64) {
        guard let balloon else { return }
        balloon.transport.configChanged { balloon.device.setTarget(bytes: bytes) }
    }

    /// The balloon's `actual` as the driver last wrote it, in bytes.
    public var balloonActualBytes: UInt64? {
        guard let balloon else { return nil }
        return balloon.transport.withDevice { UInt64(balloon.device.actualPages) * BalloonLimits.pageBytes }
    }

    /// The balloon's current target (num_pages), in bytes.
    public var balloonTargetBytes: UInt64? {
        guard let balloon else { return nil }
        return balloon.transport.withDevice { UInt64(balloon.device.targetPages) * BalloonLimits.pageBytes }
    }
}
