import Synchronization

/// How many API requests of each kind arrived and failed, under Firecracker's metric names
/// (`get_api_requests.instance_info_count`, `put_api_requests.drive_fails`, ...).
public final class APIRequestCounters: Sendable {
    /// Firecracker's names in each family, in its order; a request to a resource not named here
    /// (the balloon's, which Firecracker does not count either) is not counted.
    static let families: [(family: String, method: String, resources: [(path: String, name: String)])] = [
        ("get_api_requests", "GET", [("/", "instance_info"), ("/machine-config", "machine_cfg"), ("/mmds", "mmds"), ("/version", "vmm_version")]),
        ("put_api_requests", "PUT", [("/actions", "actions"), ("/boot-source", "boot_source"), ("/drives", "drive"), ("/logger", "logger"),
                                     ("/machine-config", "machine_cfg"), ("/cpu-config", "cpu_cfg"), ("/metrics", "metrics"),
                                     ("/network-interfaces", "network"), ("/mmds", "mmds"), ("/vsock", "vsock")]),
        ("patch_api_requests", "PATCH", [("/drives", "drive"), ("/network-interfaces", "network"), ("/machine-config", "machine_cfg"), ("/mmds", "mmds")]),
    ]

    private let counts = Mutex<[String: UInt64]>([:])

    public init() {}

    /// Counts one answered request: `<family>.<name>_count`, and `_fails` when it was refused.
    func count(method: String, path: String, failed: Bool) {
        guard let family = Self.families.first(where: { $0.method == method }),
              let resource = family.resources.first(where: { path == $0.path || ($0.path != "/" && path.hasPrefix($0.path + "/")) }) else { return }
        // Firecracker counts failures only for PUT and PATCH.
        let keys = ["\(family.family).\(resource.name)_count"] + (failed && method != "GET" ? ["\(family.family).\(resource.name)_fails"] : [])
        counts.withLock { counts in
            for key in keys { counts[key, default: 0] += 1 }
        }
    }

    /// Every metric of the three families, zero where nothing came, in Firecracker's order.
    var snapshot: [(family: String, values: [(String, UInt64)])] {
        let counts = self.counts.withLock { $0 }
        return Self.families.map { family in
            let names = family.resources.flatMap { resource in
                family.method == "GET" ? ["\(resource.name)_count"] : ["\(resource.name)_count", "\(resource.name)_fails"]
            }
            return (family.family, names.map { ($0, counts["\(family.family).\($0)"] ?? 0) })
        }
    }
}
