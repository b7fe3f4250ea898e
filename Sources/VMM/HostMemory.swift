#if canImport(Glibc)
import Glibc
#endif

/// Resident memory of this process, read from procfs: the numbers a host operator sees.
public struct HostMemorySample: Sendable {
    /// VmRSS: everything resident, guest RAM included.
    public let residentBytes: UInt64
    /// VmHWM: the peak of VmRSS so far.
    public let peakResidentBytes: UInt64
    /// Resident bytes of the guest RAM mapping alone.
    public let guestResidentBytes: UInt64

    /// What Ebb itself costs: resident memory that is not guest RAM.
    public var overheadBytes: UInt64 { residentBytes &- min(guestResidentBytes, residentBytes) }
}

extension Machine {
    public func sampleHostMemory() -> HostMemorySample {
        let status = readProcFile("/proc/self/status")
        return HostMemorySample(
            residentBytes: kilobyteField("VmRSS:", in: status) * 1024,
            peakResidentBytes: kilobyteField("VmHWM:", in: status) * 1024,
            guestResidentBytes: memory.residentHostBytes)
    }
}

func kilobyteField(_ name: String, in text: String) -> UInt64 {
    for line in text.split(separator: "\n") where line.hasPrefix(name) {
        let digits = line.dropFirst(name.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? ""
        return UInt64(digits) ?? 0
    }
    return 0
}

/// procfs files report size 0, so read until EOF.
func readProcFile(_ path: String) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = read(fd, &chunk, chunk.count)
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { break }
        bytes += chunk[0..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}
