#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKVM

/// Guest RAM: one anonymous, private, `MAP_NORESERVE` host mapping cut into guest-physical regions
/// (RAM below the 32-bit MMIO hole and, for large guests, RAM above 4 GiB), aligned for huge pages.
///
/// Every access names a guest range that is validated whole before a byte is touched. The class is
/// `@unchecked Sendable` because the guest itself writes this memory concurrently from every vCPU:
/// Ebb never keeps a Swift view of guest memory across calls, it copies in or out at once.
public final class GuestMemory: @unchecked Sendable {
    public struct Region: Sendable, Equatable {
        public let guestRange: GuestRange
        /// Offset of the region's first byte inside the host mapping.
        public let hostOffset: UInt64
    }

    public let regions: [Region]
    /// Guest RAM in bytes: the regions' lengths added up.
    public let sizeBytes: UInt64
    public let pageSizeBytes: UInt64
    /// Whether the mapping asked for transparent huge pages and the kernel took the advice.
    public let hugePages: Bool
    /// The host mapping: every region, with unused (never touched) space between them for alignment.
    private let mappingBytes: UInt64
    private let base: UnsafeMutableRawPointer

    /// x86-64's huge page (a page-table PMD entry). KVM maps a guest-physical 2 MiB block with one
    /// huge page only when its host-virtual address has the same offset within 2 MiB; otherwise
    /// every 2 MiB block straddles two host huge pages and the guest runs on 4 KiB mappings
    /// (measured on a Debian 12 host, whose kernel does not align large anonymous mappings: a
    /// guest's first touch of 512 MiB took 5.0 s instead of 1.8 s, and more free memory stayed
    /// resident). So Ebb aligns the mapping itself, as QEMU does.
    public static let hugePageBytes: UInt64 = 2 << 20

    /// Maps `regions` (sorted, non-overlapping) in one host mapping, each at a host offset congruent
    /// to its guest address modulo `hugePageBytes`, the mapping itself aligned to `hugePageBytes`.
    /// With `hugePages`, the mapping asks for transparent huge pages (`MADV_HUGEPAGE`, as QEMU does):
    /// a guest's first touch of 2 MiB costs one fault, not 512, and a reported 2 MiB block is given
    /// back as one page. With `prefault`, every page is populated now (like QEMU's `-mem-prealloc`).
    public init(regions layout: [GuestRange], hugePages: Bool = false, prefault: Bool = false) throws {
        var regions: [Region] = []
        var total: UInt64 = 0
        var end: UInt64 = 0
        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let huge = Self.hugePageBytes
        for range in layout {
            guard range.length > 0, range.start.value % page == 0, range.length % page == 0 else {
                throw GuestMemoryError.invalidLayout("region \(range) is empty or not page-aligned")
            }
            if let last = regions.last, last.guestRange.end > range.start.value {
                throw GuestMemoryError.invalidLayout("region \(range) overlaps or precedes \(last.guestRange)")
            }
            // The first offset from `end` on that shares the guest address's offset within 2 MiB.
            let offset = end + (range.start.value % huge + huge - end % huge) % huge
            let (next, overflow) = offset.addingReportingOverflow(range.length)
            guard !overflow, next <= UInt64(Int.max) - huge else {
                throw GuestMemoryError.invalidLayout("total size over \(Int.max) bytes")
            }
            regions.append(Region(guestRange: range, hostOffset: offset))
            total += range.length
            end = next
        }
        guard total > 0 else { throw GuestMemoryError.invalidLayout("no RAM") }
        // Reserve one huge page more than needed, then give back the unaligned head and the tail.
        let reserved = end + huge
        let pointer = mmap(nil, Int(reserved), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | EBB_MAP_NORESERVE, -1, 0)
        guard let pointer, pointer != MAP_FAILED else {
            throw GuestMemoryError.mapFailed(errno: errno, bytes: total)
        }
        let trim = Self.alignedWindow(mappingStart: UInt64(UInt(bitPattern: pointer)), reservedBytes: reserved, neededBytes: end, alignment: huge)
        if trim.headBytes > 0 { munmap(pointer, Int(trim.headBytes)) }
        let base = pointer + Int(trim.headBytes)
        if trim.tailBytes > 0 { munmap(base + Int(end), Int(trim.tailBytes)) }
        // Advice first, so prefaulting already gets huge pages. Refused advice (THP compiled out,
        // or "never") only costs speed.
        self.hugePages = hugePages && madvise(base, Int(end), EBB_MADV_HUGEPAGE) == 0
        if prefault {
            for region in regions {
                for offset in stride(from: Int(region.hostOffset), to: Int(region.hostOffset + region.guestRange.length), by: Int(page)) {
                    base.storeBytes(of: 0, toByteOffset: offset, as: UInt8.self)
                }
            }
        }
        self.base = base
        self.regions = regions
        self.sizeBytes = total
        self.mappingBytes = end
        self.pageSizeBytes = page
    }

    /// Where inside a reservation of `reservedBytes` at `mappingStart` the first `alignment`-aligned
    /// window of `neededBytes` starts, and how much to unmap before and after it.
    static func alignedWindow(mappingStart: UInt64, reservedBytes: UInt64, neededBytes: UInt64, alignment: UInt64)
        -> (headBytes: UInt64, tailBytes: UInt64)
    {
        let head = (alignment - mappingStart % alignment) % alignment
        return (head, reservedBytes - neededBytes - head)
    }

    deinit { munmap(base, Int(mappingBytes)) }

    /// Host address of a region's first byte, for `KVM_SET_USER_MEMORY_REGION`.
    public func hostAddress(of region: Region) -> UInt64 {
        UInt64(UInt(bitPattern: base + Int(region.hostOffset)))
    }

    /// The host mapping's address range: where a host tool (`/proc/PID/smaps`) finds guest RAM.
    public var hostMapping: (start: UInt64, sizeBytes: UInt64) {
        (UInt64(UInt(bitPattern: base)), mappingBytes)
    }

    /// The region holding all of `range`, or nil: a range may not straddle the MMIO hole.
    public func region(containing range: GuestRange) -> Region? {
        regions.first { $0.guestRange.contains(range) }
    }

    public func contains(_ address: GuestAddress, length: UInt64) -> Bool {
        guard let range = GuestRange(start: address, length: length) else { return false }
        return region(containing: range) != nil
    }

    /// A host view of `length` guest bytes at `address`, valid only until the caller returns.
    /// Throws when any byte lies outside guest RAM.
    public func withBytes<R>(
        at address: GuestAddress, length: UInt64,
        _ body: (UnsafeMutableRawBufferPointer) throws -> R
    ) throws -> R {
        guard let range = GuestRange(start: address, length: length), let region = region(containing: range) else {
            throw GuestMemoryError.outOfRange(address: address.value, length: length)
        }
        let offset = region.hostOffset + (address.value - region.guestRange.start.value)
        return try body(UnsafeMutableRawBufferPointer(start: base + Int(offset), count: Int(length)))
    }

    /// The host bytes behind `length` guest bytes at `address`, for I/O straight to and from guest
    /// RAM (`preadv`/`pwritev`). Throws when any byte lies outside guest RAM. The mapping lives as
    /// long as this object: a caller holds the memory while it uses the buffer, and no longer.
    public func hostBuffer(at address: GuestAddress, length: UInt64) throws -> UnsafeMutableRawBufferPointer {
        try withBytes(at: address, length: length) { $0 }
    }

    /// Copies `count` bytes out of the guest.
    public func read(at address: GuestAddress, count: Int) throws -> [UInt8] {
        try withBytes(at: address, length: UInt64(count)) { Array($0) }
    }

    /// Copies `bytes` into the guest.
    public func write(_ bytes: [UInt8], at address: GuestAddress) throws {
        try withBytes(at: address, length: UInt64(bytes.count)) { destination in
            bytes.withUnsafeBytes { destination.copyMemory(from: $0) }
        }
    }

    /// A little-endian integer read from any alignment.
    public func load<T: FixedWidthInteger>(_ type: T.Type, at address: GuestAddress) throws -> T {
        try withBytes(at: address, length: UInt64(MemoryLayout<T>.size)) {
            T(littleEndian: $0.loadUnaligned(as: T.self))
        }
    }

    /// A little-endian integer written at any alignment.
    public func store<T: FixedWidthInteger>(_ value: T, at address: GuestAddress) throws {
        try withBytes(at: address, length: UInt64(MemoryLayout<T>.size)) {
            $0.storeBytes(of: value.littleEndian, as: T.self)
        }
    }

    /// How much of the host pages wholly inside `range` is resident on the host (`mincore`):
    /// what a discard of `range` would give back. 0 if the kernel will not say.
    public func residentBytes(in range: GuestRange) -> UInt64 {
        guard let region = region(containing: range) else { return 0 }
        let first = (range.start.value + pageSizeBytes - 1) / pageSizeBytes * pageSizeBytes
        let last = range.end / pageSizeBytes * pageSizeBytes
        guard last > first else { return 0 }
        let offset = region.hostOffset + (first - region.guestRange.start.value)
        return residentBytes(hostOffset: offset, length: last - first)
    }

    /// How much of the whole host mapping of guest RAM is resident: its `Rss:` in
    /// /proc/self/smaps, from one walk of its page tables instead of a walk and a formatting of
    /// every mapping of the process (the reclaim samples it every second while a guest moves data).
    public var residentHostBytes: UInt64 { residentBytes(hostOffset: 0, length: mappingBytes) }

    /// mincore(2) over whole pages from `hostOffset`; 0 if the kernel will not say.
    private func residentBytes(hostOffset: UInt64, length: UInt64) -> UInt64 {
        let pages = Int(length / pageSizeBytes)
        // Whole words, so that the bytes are counted eight at a time; the tail stays zero. Only
        // the low bit of each says resident, the others are reserved.
        var words = [UInt64](repeating: 0, count: (pages + 7) / 8)
        let status = words.withUnsafeMutableBytes { mincore(base + Int(hostOffset), Int(length), $0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
        guard status == 0 else { return 0 }
        return UInt64(words.reduce(0) { $0 + ($1 & 0x0101_0101_0101_0101).nonzeroBitCount }) * pageSizeBytes
    }

    /// Gives the host pages wholly inside `range` back to the kernel (`MADV_DONTNEED`): the host's
    /// resident memory falls, and the guest reads zeros there next time. Partial pages at the edges
    /// are kept, since a neighbour may still be in use. Returns the bytes discarded.
    public func discard(_ range: GuestRange) throws -> UInt64 {
        guard let region = region(containing: range) else {
            throw GuestMemoryError.outOfRange(address: range.start.value, length: range.length)
        }
        let first = (range.start.value + pageSizeBytes - 1) / pageSizeBytes * pageSizeBytes
        let last = range.end / pageSizeBytes * pageSizeBytes
        guard last > first else { return 0 }
        let offset = region.hostOffset + (first - region.guestRange.start.value)
        let bytes = last - first
        if madvise(base + Int(offset), Int(bytes), EBB_MADV_DONTNEED) != 0 {
            throw DiscardError(errno: errno, range: range)
        }
        return bytes
    }
}

/// `madvise` refused a discard. Counted by the caller and never fatal: the memory stays resident.
public struct DiscardError: Error, CustomStringConvertible {
    public let errno: Int32
    public let range: GuestRange
    public var description: String {
        "discard of \(range) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}
