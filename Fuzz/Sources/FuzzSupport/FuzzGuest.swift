import GuestMemory

/// The guest RAM every device target works in: two regions with a hole between them, so chains
/// that run off the end of RAM or into the hole are as easy to find as chains inside it. Made once
/// per process (a mapping per input would dominate the run time) and rewritten by every input.
public enum FuzzGuest {
    public static let lowRAM = GuestRange(start: GuestAddress(0), length: 0x20000)!
    public static let highRAM = GuestRange(start: GuestAddress(0x40000), length: 0x20000)!
    public static let memory: GuestMemory = {
        do { return try GuestMemory(regions: [lowRAM, highRAM]) } catch { fatalError("fuzz guest RAM: \(error)") }
    }()

    /// Where queue `index`'s rings are: descriptor table, avail ring 4 KiB later, used ring 8 KiB later.
    public static func ringBase(queue index: Int) -> UInt64 { UInt64(index) * 0x4000 }

    /// Zeroes RAM, then lays `image` over it from address 0 (the low region) on: the first bytes
    /// are queue 0's descriptor table, so the fuzzer writes descriptors directly.
    public static func load(image: [UInt8]) {
        for region in [lowRAM, highRAM] {
            _ = try! memory.withBytes(at: region.start, length: region.length) { $0.initializeMemory(as: UInt8.self, repeating: 0) }
        }
        let count = min(image.count, Int(lowRAM.length))
        try! memory.write(Array(image.prefix(count)), at: GuestAddress(0))
    }
}
