/// Why a kernel image cannot be booted. Each case reads as one line for the user.
public enum BootImageError: Error, Equatable, CustomStringConvertible {
    case unrecognized
    case truncated(String)
    case unsupportedProtocol(version: UInt16)
    case not64Bit
    case badELF(String)
    case noPVHEntry
    case doesNotFit(String)
    case commandLineTooLong(length: Int, limit: Int)

    public var description: String {
        switch self {
        case .unrecognized:
            return "not a Linux bzImage nor an ELF kernel with a PVH entry note"
        case let .truncated(what):
            return "the image is truncated: \(what)"
        case let .unsupportedProtocol(version):
            return "boot protocol \(version >> 8).\(String(format2: version & 0xff)) is too old: Ebb needs 2.12 or later (64-bit entry)"
        case .not64Bit:
            return "the bzImage has no 64-bit entry point (XLF_KERNEL_64 is not set)"
        case let .badELF(why):
            return "invalid ELF kernel: \(why)"
        case .noPVHEntry:
            return "the ELF kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): build it with CONFIG_PVH=y"
        case let .doesNotFit(what):
            return "\(what) does not fit in guest memory"
        case let .commandLineTooLong(length, limit):
            return "the kernel command line is \(length) bytes; this kernel accepts at most \(limit)"
        }
    }
}

extension String {
    /// Two-digit decimal, for protocol minor versions ("2.06").
    init<T: BinaryInteger>(format2 value: T) {
        self = value < 10 ? "0\(value)" : "\(value)"
    }
}
