import Virtio

extension Machine {
    /// The agentless reclaim's state, or nil when it is off (or there is no balloon).
    public var reclaimStatus: ReclaimStatus? { reclaimer?.status }

    /// The vCPUs' time halted so far, summed, KVM's halt polling counted as halted: an idle guest
    /// halts often, and KVM polls a while each time before it waits, so leaving polling out made an
    /// idle guest look busy.
    func idleNanoseconds() -> UInt64? {
        let time = vcpuTime()
        guard let waited = time.haltedNanoseconds?.reduce(0, +) else { return nil }
        return waited + (time.haltPollingNanoseconds?.reduce(0, +) ?? 0)
    }

    /// What the reclaim policy sees now. vCPU statistics and the resident size of guest RAM cost
    /// more than the rest (a read per vCPU, a walk of guest RAM's page tables): only when `sampleCostly`.
    func reclaimObservation(elapsed: Duration, sampleCostly: Bool) -> ReclaimObservation? {
        guard let balloon = withDevice(BalloonDevice.self, { ($0.counters, UInt64($0.actualPages) * BalloonLimits.pageBytes) }) else {
            return nil
        }
        let (counters, actual) = balloon
        let requests = disks.reduce(UInt64(0)) { total, disk in
            let c = disk.counters
            return total + c.reads + c.writes + c.flushes + c.discards + c.writeZeroes
        }
        let networkBytes = networkInterfaces.reduce(UInt64(0)) { $0 + $1.counters.receivedBytes + $1.counters.sentBytes }
        var observation = ReclaimObservation(
            elapsed: elapsed, statistics: GuestMemoryStatistics(tags: counters.guestStatistics),
            statisticsUpdates: counters.statisticsUpdates,
            haltedNanoseconds: sampleCostly ? idleNanoseconds() : nil,
            vcpuCount: vcpus.count, deviceRequests: requests, networkBytes: networkBytes,
            residentBytes: sampleCostly ? memory.residentHostBytes : nil,
            balloonActualBytes: actual,
            deflatedBytes: counters.deflatedPages * BalloonLimits.pageBytes)
        observation.statisticsRequests = counters.statisticsRequests
        observation.answeredStatisticsRequest = counters.answeredStatisticsRequest
        return observation
    }
}
