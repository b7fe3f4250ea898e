import GuestMemory

/// virtio-balloon constants (virtio 1.2, 5.5), named as there.
public enum BalloonFeature {
    public static let mustTellHost: UInt64 = 1 << 0
    public static let statsQueue: UInt64 = 1 << 1
    public static let deflateOnOOM: UInt64 = 1 << 2
    public static let freePageHint: UInt64 = 1 << 3
    public static let pagePoison: UInt64 = 1 << 4
    public static let reporting: UInt64 = 1 << 5
}

/// The balloon's queues by role; their indices depend on the negotiated features.
public enum BalloonQueue: Sendable, Equatable {
    case inflate, deflate, stats, reporting

    /// Linux numbers the queues that exist densely: inflate, deflate, then stats, free-page hint and
    /// reporting in that order when negotiated. Ebb never offers free-page hinting.
    public static func roles(features: UInt64) -> [BalloonQueue] {
        var roles: [BalloonQueue] = [.inflate, .deflate]
        if features & BalloonFeature.statsQueue != 0 { roles.append(.stats) }
        if features & BalloonFeature.reporting != 0 { roles.append(.reporting) }
        return roles
    }
}

/// Statistic tags of `struct virtio_balloon_stat` (virtio 1.2, 5.5.6.3); 10 to 15 are Linux's
/// own since 6.12 (include/uapi/linux/virtio_balloon.h), absent from older guests.
public enum BalloonStatTag: UInt16, Sendable, CaseIterable {
    case swapIn = 0, swapOut = 1, majorFaults = 2, minorFaults = 3, freeMemory = 4, totalMemory = 5
    case availableMemory = 6, diskCaches = 7, hugetlbAllocations = 8, hugetlbFailures = 9
    case oomKills = 10, allocationStalls = 11, asyncScans = 12, directScans = 13, asyncReclaims = 14, directReclaims = 15

    public var name: String {
        switch self {
        case .swapIn: return "swap-in"
        case .swapOut: return "swap-out"
        case .majorFaults: return "major-faults"
        case .minorFaults: return "minor-faults"
        case .freeMemory: return "free-memory"
        case .totalMemory: return "total-memory"
        case .availableMemory: return "available-memory"
        case .diskCaches: return "disk-caches"
        case .hugetlbAllocations: return "hugetlb-allocations"
        case .hugetlbFailures: return "hugetlb-failures"
        case .oomKills: return "oom-kills"
        case .allocationStalls: return "allocation-stalls"
        case .asyncScans: return "async-scans"
        case .directScans: return "direct-scans"
        case .asyncReclaims: return "async-reclaims"
        case .directReclaims: return "direct-reclaims"
        }
    }
}

public enum BalloonLimits {
    /// The guest page size PFNs count in (VIRTIO_BALLOON_PFN_SHIFT = 12).
    public static let pageBytes: UInt64 = GuestPage.bytes
    /// Linux sends at most 256 PFNs per inflate/deflate buffer; accept up to 16x that.
    public static let maximumPFNArrayBytes = 16 * 256 * 4
    /// A stats buffer of more than this many entries is not from a real driver.
    public static let maximumStatsBytes = 64 * 10
    /// Linux's page_reporting needs 32 entries (PAGE_REPORTING_CAPACITY).
    public static let queueSize: UInt16 = 128
}
