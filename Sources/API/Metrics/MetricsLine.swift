#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import Virtio
import VMM

/// One metrics line: families of named counters, in Firecracker's shape (`{"utc_timestamp_ms":
/// ..., "balloon": {...}, "block": {...}, "block_<drive_id>": {...}, "get_api_requests": ...}`).
/// Every counter is cumulative here; `MetricsWriter` writes what it gained since the last line,
/// as Firecracker's incremental metrics are.
struct MetricsLine: Encodable {
    typealias Family = (name: String, values: [(String, UInt64)])
    var timestampMilliseconds: UInt64
    var families: [Family]

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: AnyKey.self)
        try container.encode(timestampMilliseconds, forKey: AnyKey(stringValue: "utc_timestamp_ms"))
        for family in families {
            var values = container.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey(stringValue: family.name))
            for (name, value) in family.values { try values.encode(value, forKey: AnyKey(stringValue: name)) }
        }
    }

    /// The JSON text, keys sorted (the encoder keeps no order of its own).
    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// Each counter less what it was in `previous` (a counter that is new counts from zero).
    func since(_ previous: [String: UInt64]) -> MetricsLine {
        var line = self
        line.families = families.map { family in
            (family.name, family.values.map { name, value in
                let before = previous["\(family.name).\(name)"] ?? 0
                return (name, value >= before ? value - before : value)
            })
        }
        return line
    }

    var cumulative: [String: UInt64] {
        var all: [String: UInt64] = [:]
        for family in families { for (name, value) in family.values { all["\(family.name).\(name)"] = value } }
        return all
    }
}

extension MetricsLine {
    /// The families from what the control plane sees now: the API's counters always, the
    /// balloon's, the disks', the NICs' and the agentless reclaim's once the machine runs.
    static func gather(control: ControlPlane, requests: APIRequestCounters, failedMetrics: UInt64) -> MetricsLine {
        var families: [Family] = []
        let machine = control.machine
        if let counters = machine?.balloonCounters {
            families.append(("balloon", [
                ("activate_fails", 0), ("inflate_count", counters.inflatedPages), ("stats_updates_count", counters.statisticsUpdates),
                ("stats_update_fails", 0), ("deflate_count", counters.deflatedPages), ("event_fails", 0),
                ("free_page_report_count", counters.reportedRanges), ("free_page_report_freed", counters.reportedBytes),
                ("free_page_report_fails", counters.discardFailures),
                ("free_page_hint_count", 0), ("free_page_hint_freed", 0), ("free_page_hint_fails", 0),
            ]))
        }
        let disks = machine?.disks ?? []
        let names = control.resources.orderedDrives.map(\.id)
        var total = BlockDevice.Counters()
        var perDrive: [Family] = []
        for (index, disk) in disks.enumerated() {
            let c = disk.counters
            total.reads += c.reads; total.writes += c.writes; total.bytesRead += c.bytesRead; total.bytesWritten += c.bytesWritten
            total.flushes += c.flushes; total.ioErrors += c.ioErrors; total.unsupported += c.unsupported
            let name = (index < names.count ? names[index] : nil) ?? guestDiskName(index)
            perDrive.append(("block_\(name)", blockValues(c)))
        }
        families += perDrive
        families.append(("block", blockValues(total)))
        let interfaces = machine?.networkInterfaces ?? []
        if !interfaces.isEmpty {
            let ids = control.resources.networkInterfaces.map(\.id)
            var total = NetDevice.Counters()
            for (index, interface) in interfaces.enumerated() {
                let c = interface.counters
                total.receivedFrames += c.receivedFrames; total.receivedBytes += c.receivedBytes
                total.sentFrames += c.sentFrames; total.sentBytes += c.sentBytes
                total.malformedFrames += c.malformedFrames; total.sendFailures += c.sendFailures
                total.badReceiveChains += c.badReceiveChains; total.receiveFailures += c.receiveFailures
                let name = (index < ids.count ? ids[index] : nil) ?? "eth\(index)"
                families.append(("net_\(name)", netValues(c)))
            }
            families.append(("net", netValues(total)))
        }
        families += requests.snapshot.map { ($0.family, $0.values) }
        families.append(("logger", [("missed_metrics_count", 0), ("metrics_fails", failedMetrics),
                                    ("missed_log_count", Log.missedLines), ("rate_limited_log_count", 0)]))
        if let reclaim = machine?.reclaimStatus, let counters = machine?.balloonCounters {
            families.append(("ebb_reclaim", [
                ("squeezes", reclaim.counters.squeezes), ("free_pages_squeezes", reclaim.counters.freePagesSqueezes),
                ("squeezed_bytes", reclaim.counters.squeezedBytes),
                ("report_returned_bytes", counters.reportReturnedBytes),
                ("aborts", reclaim.counters.aborts.values.reduce(0, +)), ("back_offs", reclaim.counters.backOffs.values.reduce(0, +)),
            ]))
        }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return MetricsLine(timestampMilliseconds: UInt64(now.tv_sec) * 1000 + UInt64(now.tv_nsec / 1_000_000), families: families)
    }

    /// Firecracker's net metrics that Ebb's counters answer.
    private static func netValues(_ c: NetDevice.Counters) -> [(String, UInt64)] {
        [("rx_packets_count", c.receivedFrames), ("rx_bytes_count", c.receivedBytes), ("rx_fails", c.receiveFailures + c.badReceiveChains),
         ("tx_packets_count", c.sentFrames), ("tx_bytes_count", c.sentBytes), ("tx_fails", c.sendFailures),
         ("tx_malformed_frames", c.malformedFrames)]
    }

    /// Firecracker's block metrics that Ebb's counters answer.
    private static func blockValues(_ c: BlockDevice.Counters) -> [(String, UInt64)] {
        [("read_bytes", c.bytesRead), ("write_bytes", c.bytesWritten), ("read_count", c.reads), ("write_count", c.writes),
         ("flush_count", c.flushes), ("invalid_reqs_count", c.ioErrors + c.unsupported)]
    }
}
