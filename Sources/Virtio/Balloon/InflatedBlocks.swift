import GuestMemory

/// Inflated pages whose discard waits until the rest of their huge page has joined them.
///
/// Guest RAM is backed by 2 MiB transparent huge pages. Linux's driver inflates 256 pages (1 MiB)
/// per request, sweeping up through its free blocks, so discarding each request at once cuts every
/// huge page in half: the host splits it, KVM drops its 2 MiB mapping, and the guest's writes to
/// the other half (Debian's kernel zeroes every page it allocates, the balloon's included) then
/// fault once per 4 KiB page instead of once per 2 MiB. Holding a request's pages until the next
/// one completes their block makes each block one `madvise` of a whole huge page.
///
/// The same holds where the guest gives up cache: its LRU frees pages in the order it read them,
/// close together but not a block at a time, so several blocks fill at once (with two blocks
/// waiting, a squeeze discarded 260 MiB of cache in ~1000 pieces; with 32, ~230).
///
/// Bounded: at most `capacity` blocks wait; a page in a block pushed out by a newer one, or in a
/// block no page joined since the last `takeStale`, is discarded on its own as before. Only for a
/// driver that negotiated VIRTIO_BALLOON_F_MUST_TELL_HOST, which uses no page before its deflation
/// was acknowledged: the device takes everything waiting before it acknowledges one.
struct InflatedBlocks {
    static let blockBytes = GuestMemory.hugePageBytes
    static let framesPerBlock = Int(blockBytes / BalloonLimits.pageBytes)
    private static let wordsPerBlock = framesPerBlock / 64

    private struct Block {
        /// The block's first page frame.
        let firstFrame: UInt64
        var bits: [UInt64]
        var count = 0
        /// Whether a page joined since the last `takeStale`.
        var recent = true
    }

    let capacity: Int
    /// Oldest first.
    private var blocks: [Block] = []
    /// Where the last frame went: frames come sorted, mostly into the same block as the one before.
    private var lastIndex = 0

    init(capacity: Int = 32) {
        self.capacity = max(1, capacity)
    }

    /// Pages waiting, for the tests and the summary.
    var waitingPages: Int { blocks.reduce(0) { $0 + $1.count } }

    /// Adds one inflated page frame; `discard` gets the runs of pages due now: its block when the
    /// page completed it, or the pages of the oldest block when a new one pushed it out.
    mutating func add(frame: UInt64, discard: (_ firstFrame: UInt64, _ frames: Int) -> Void) {
        let first = frame / UInt64(Self.framesPerBlock) * UInt64(Self.framesPerBlock)
        let index: Int
        if lastIndex < blocks.count, blocks[lastIndex].firstFrame == first {
            index = lastIndex
        } else if let found = blocks.firstIndex(where: { $0.firstFrame == first }) {
            index = found
        } else {
            if blocks.count >= capacity { Self.runs(of: blocks.removeFirst(), discard) }
            blocks.append(Block(firstFrame: first, bits: [UInt64](repeating: 0, count: Self.wordsPerBlock)))
            index = blocks.count - 1
        }
        lastIndex = index
        let bit = Int(frame - first)
        let mask: UInt64 = 1 << UInt64(bit % 64)
        guard blocks[index].bits[bit / 64] & mask == 0 else { return }
        blocks[index].bits[bit / 64] |= mask
        blocks[index].count += 1
        blocks[index].recent = true
        if blocks[index].count == Self.framesPerBlock {
            discard(first, Self.framesPerBlock)
            blocks.remove(at: index)
        }
    }

    /// Everything waiting, as runs of consecutive frames in ascending order.
    mutating func takeAll(discard: (_ firstFrame: UInt64, _ frames: Int) -> Void) {
        for block in blocks.sorted(by: { $0.firstFrame < $1.firstFrame }) { Self.runs(of: block, discard) }
        blocks = []
    }

    /// The blocks no page joined since the last call: the driver has moved on, or stopped.
    mutating func takeStale(discard: (_ firstFrame: UInt64, _ frames: Int) -> Void) {
        var kept: [Block] = []
        for var block in blocks {
            if block.recent {
                block.recent = false
                kept.append(block)
            } else {
                Self.runs(of: block, discard)
            }
        }
        blocks = kept
    }

    /// Forgets what waits without discarding it (the pages stay resident).
    mutating func forget() { blocks = [] }

    private static func runs(of block: Block, _ body: (_ firstFrame: UInt64, _ frames: Int) -> Void) {
        var start: Int?
        for bit in 0...framesPerBlock {
            let set = bit < framesPerBlock && block.bits[bit / 64] & (1 << UInt64(bit % 64)) != 0
            if set, start == nil { start = bit }
            if !set, let first = start {
                body(block.firstFrame + UInt64(first), bit - first)
                start = nil
            }
        }
    }
}
