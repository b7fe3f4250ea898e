/// A kernel Ebb knows how to enter: a bzImage through the 64-bit boot protocol, or an ELF through PVH.
public enum KernelImage: Sendable {
    case bzImage(SetupHeader, image: [UInt8])
    case pvh(ELFKernel, image: [UInt8])

    /// Recognizes the format by its magic numbers, then validates it fully.
    public init(bytes: [UInt8]) throws {
        if ELFKernel.looksLikeELF(bytes) {
            self = .pvh(try ELFKernel(image: bytes), image: bytes)
        } else {
            self = .bzImage(try SetupHeader(image: bytes), image: bytes)
        }
    }

    public var formatName: String {
        switch self {
        case .bzImage: return "bzImage"
        case .pvh: return "PVH ELF"
        }
    }
}
