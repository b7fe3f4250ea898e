/// An ELF64 x86-64 kernel with a PVH entry (`XEN_ELFNOTE_PHYS32_ENTRY`): an uncompressed `vmlinux`
/// built with CONFIG_PVH, or Ebb's test kernel. Parsed from untrusted bytes: every header, segment
/// and note is bounds-checked before use.
public struct ELFKernel: Sendable {
    public struct Segment: Sendable, Equatable {
        public let fileOffset: Int
        public let fileSizeBytes: Int
        public let physicalAddress: UInt64
        public let memorySizeBytes: UInt64
    }

    /// XEN_ELFNOTE_PHYS32_ENTRY from xen/include/public/elfnote.h.
    static let xenNotePhys32Entry: UInt32 = 18
    static let maximumProgramHeaders = 128

    public let segments: [Segment]
    /// 32-bit physical address where the PVH entry expects to start.
    public let pvhEntry: UInt32

    public static func looksLikeELF(_ image: [UInt8]) -> Bool {
        image.starts(with: [0x7f, 0x45, 0x4c, 0x46])
    }

    public init(image: [UInt8]) throws {
        let reader = ByteReader(image)
        guard Self.looksLikeELF(image) else { throw BootImageError.unrecognized }
        guard reader.u8(4) == 2 else { throw BootImageError.badELF("not a 64-bit ELF (class \(reader.u8(4) ?? 0))") }
        guard reader.u8(5) == 1 else { throw BootImageError.badELF("not little-endian") }
        guard reader.u16(18) == 62 else { throw BootImageError.badELF("not an x86-64 image (machine \(reader.u16(18) ?? 0))") }
        guard let phoff = reader.u64(32), let phentsize = reader.u16(54), let phnum = reader.u16(56) else {
            throw BootImageError.truncated("the ELF header")
        }
        guard phentsize >= 56, phnum > 0, phnum <= Self.maximumProgramHeaders,
              phoff < UInt64(image.count),
              UInt64(phnum) * UInt64(phentsize) <= UInt64(image.count) - phoff else {
            throw BootImageError.badELF("program header table out of bounds")
        }
        var segments: [Segment] = []
        var entry: UInt32?
        for index in 0..<Int(phnum) {
            let base = Int(phoff) + index * Int(phentsize)
            guard let type = reader.u32(base), let offset = reader.u64(base + 8), let paddr = reader.u64(base + 24),
                  let filesz = reader.u64(base + 32), let memsz = reader.u64(base + 40) else {
                throw BootImageError.truncated("program header \(index)")
            }
            guard offset <= UInt64(image.count), filesz <= UInt64(image.count) - offset else {
                throw BootImageError.badELF("segment \(index) lies outside the file")
            }
            switch type {
            case 1: // PT_LOAD
                guard filesz <= memsz, paddr.addingReportingOverflow(memsz).overflow == false else {
                    throw BootImageError.badELF("segment \(index) has inconsistent sizes")
                }
                if memsz > 0 {
                    segments.append(Segment(fileOffset: Int(offset), fileSizeBytes: Int(filesz),
                                            physicalAddress: paddr, memorySizeBytes: memsz))
                }
            case 4: // PT_NOTE
                if entry == nil { entry = Self.pvhEntry(in: reader, offset: Int(offset), size: Int(filesz)) }
            default:
                continue
            }
        }
        guard !segments.isEmpty else { throw BootImageError.badELF("no loadable segment") }
        guard let entry else { throw BootImageError.noPVHEntry }
        self.segments = segments
        self.pvhEntry = entry
    }

    /// Walks the notes in one PT_NOTE segment for Xen's PHYS32_ENTRY.
    static func pvhEntry(in reader: ByteReader, offset: Int, size: Int) -> UInt32? {
        var cursor = offset
        let end = offset + size
        func aligned(_ value: Int) -> Int { (value + 3) & ~3 }
        while cursor + 12 <= end {
            guard let nameSize = reader.u32(cursor), let descSize = reader.u32(cursor + 4),
                  let type = reader.u32(cursor + 8), nameSize < 4096, descSize < 4096 else { return nil }
            let nameStart = cursor + 12
            let descStart = nameStart + aligned(Int(nameSize))
            let next = descStart + aligned(Int(descSize))
            guard next <= end else { return nil }
            if type == xenNotePhys32Entry, nameSize == 4, reader.slice(nameStart, count: 4).map(Array.init) == Array("Xen\0".utf8),
               descSize >= 4, let value = reader.u32(descStart) {
                return value
            }
            cursor = next
        }
        return nil
    }
}
