import Virtio

extension Machine {
    /// The first device of type `D` as the machine holds it: its transport and its thread.
    func attachedDevice<D: VirtioDevice>(of type: D.Type) -> AttachedVirtioDevice? {
        virtioDevices.first { $0.transport.withDevice(type) { _ in true } ?? false }
    }

    /// The transport of the first device of type `D`: how the API and the summary reach a device.
    func transport<D: VirtioDevice>(of type: D.Type) -> VirtioMMIOTransport? { attachedDevice(of: type)?.transport }

    /// Runs `body` with the first device of type `D`, under its transport's lock; nil without one.
    public func withDevice<D: VirtioDevice, R: Sendable>(_ type: D.Type, _ body: @Sendable (D) -> R) -> R? {
        transport(of: type)?.withDevice(type, body)
    }

    /// The balloon's counters so far, or nil when the machine has no balloon.
    public var balloonCounters: BalloonCounters? { withDevice(BalloonDevice.self) { $0.counters } }

    /// Why the guest broke the balloon, if it did (DEVICE_NEEDS_RESET).
    public var balloonBrokenReason: String? { transport(of: BalloonDevice.self)?.brokenReason }

    /// The user's balloon target (`--balloon-target`, `PATCH /balloon`): the guest should hold
    /// `bytes` in the balloon. It wins over the agentless reclaim, which squeezes only while the
    /// user's target is 0.
    public func setBalloonTarget(bytes: UInt64) {
        if let reclaimer { reclaimer.setUserTarget(bytes: bytes) } else { applyBalloonTarget(bytes: bytes) }
    }

    /// Sets the device's target; the driver hears of it by a config interrupt.
    func applyBalloonTarget(bytes: UInt64) {
        transport(of: BalloonDevice.self)?.configChanged(BalloonDevice.self) { $0.setTarget(bytes: bytes) }
    }

    /// How often the balloon's statistics are asked for: as built, or as PATCH /balloon/statistics
    /// last set it. Nil: never (they cannot be turned on or off once the guest runs).
    public var balloonStatisticsInterval: Duration? {
        changedStatisticsInterval.withLock { $0 } ?? configuration.balloon?.statisticsInterval
    }

    /// Asks for the balloon's statistics every `interval` from now on, the first at once; never
    /// less often than the agentless reclaim needs them, when it is on.
    public func setBalloonStatisticsInterval(_ interval: Duration) throws {
        changedStatisticsInterval.withLock { $0 = interval }
        try attachedDevice(of: BalloonDevice.self)?.eventLoop.restartTimer(interval: polled(interval))
    }

    /// How often statistics are really asked for: the agentless reclaim needs them every second.
    private func polled(_ interval: Duration) -> Duration {
        reclaimer == nil ? interval : min(interval, MachineResources.Defaults.reclaimStatisticsInterval)
    }

    /// The next statistics update asked for now, the timer's period unchanged (the agentless
    /// reclaim, between the stages of a squeeze). Nothing without statistics.
    func requestBalloonStatisticsNow() {
        guard let interval = balloonStatisticsInterval else { return }
        // A timer that cannot be re-armed keeps its old schedule: the figures come a tick later.
        try? attachedDevice(of: BalloonDevice.self)?.eventLoop.restartTimer(interval: polled(interval))
    }

    /// The balloon's `actual` as the driver last wrote it, in bytes.
    public var balloonActualBytes: UInt64? {
        withDevice(BalloonDevice.self) { UInt64($0.actualPages) * BalloonLimits.pageBytes }
    }

    /// The balloon's current target (num_pages), in bytes.
    public var balloonTargetBytes: UInt64? {
        withDevice(BalloonDevice.self) { UInt64($0.targetPages) * BalloonLimits.pageBytes }
    }
}
