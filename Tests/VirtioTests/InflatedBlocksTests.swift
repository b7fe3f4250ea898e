import GuestMemory
import Testing
@testable import Virtio

/// What `InflatedBlocks` hands back to discard, as (first frame, frames) runs.
private struct Due {
    var runs: [(first: UInt64, count: Int)] = []
    mutating func take(_ first: UInt64, _ count: Int) { runs.append((first, count)) }
    var frames: Int { runs.reduce(0) { $0 + $1.count } }
}

@Suite struct InflatedBlocksTests {
    /// Linux's two 1 MiB requests of one 2 MiB block, each in descending order: nothing is due
    /// after the first, the whole block as one run after the second.
    @Test func twoHalvesOfAHugePageAreDiscardedAsOne() {
        var blocks = InflatedBlocks()
        var due = Due()
        for frame in (0x400..<0x500).reversed() as ReversedCollection<Range<UInt64>> { blocks.add(frame: frame) { due.take($0, $1) } }
        #expect(due.runs.isEmpty)
        #expect(blocks.waitingPages == 256)
        for frame in (0x500..<0x600).reversed() as ReversedCollection<Range<UInt64>> { blocks.add(frame: frame) { due.take($0, $1) } }
        #expect(due.runs.count == 1)
        #expect(due.runs.first?.first == 0x400 && due.runs.first?.count == 512)
        #expect(blocks.waitingPages == 0)
    }

    @Test func aFrameGivenTwiceCountsOnce() {
        var blocks = InflatedBlocks()
        var due = Due()
        for _ in 0..<3 { blocks.add(frame: 0x1234) { due.take($0, $1) } }
        #expect(blocks.waitingPages == 1)
        blocks.takeAll { due.take($0, $1) }
        #expect(due.runs.count == 1 && due.frames == 1)
    }

    /// Scattered pages (a guest giving up cache) wait in at most `capacity` blocks: the oldest
    /// is pushed out, its pages as the runs they form.
    @Test func theOldestBlockIsPushedOutBeyondCapacity() {
        var blocks = InflatedBlocks(capacity: 2)
        var due = Due()
        for frame: UInt64 in [0x200, 0x201, 0x203, 0x400, 0x600] { blocks.add(frame: frame) { due.take($0, $1) } }
        #expect(due.runs.count == 2)
        #expect(due.runs[0].first == 0x200 && due.runs[0].count == 2)
        #expect(due.runs[1].first == 0x203 && due.runs[1].count == 1)
        #expect(blocks.waitingPages == 2)
    }

    /// A block no page joined between two calls is stale; one that grew waits one more.
    @Test func staleBlocksAreTakenGrowingOnesWait() {
        var blocks = InflatedBlocks()
        var due = Due()
        blocks.add(frame: 0x200) { due.take($0, $1) }
        blocks.add(frame: 0x400) { due.take($0, $1) }
        blocks.takeStale { due.take($0, $1) }
        #expect(due.runs.isEmpty)
        blocks.add(frame: 0x401) { due.take($0, $1) }
        blocks.takeStale { due.take($0, $1) }
        #expect(due.runs.count == 1 && due.runs.first?.first == 0x200)
        blocks.takeStale { due.take($0, $1) }
        #expect(due.runs.count == 2 && due.runs.last?.first == 0x400 && due.runs.last?.count == 2)
        #expect(blocks.waitingPages == 0)
    }

    @Test func forgottenPagesAreNeverDue() {
        var blocks = InflatedBlocks()
        var due = Due()
        blocks.add(frame: 0x200) { due.take($0, $1) }
        blocks.forget()
        blocks.takeAll { due.take($0, $1) }
        #expect(due.runs.isEmpty && blocks.waitingPages == 0)
    }
}

/// The balloon holding inflations: only with huge pages, MUST_TELL_HOST and a statistics timer.
@Suite struct BalloonHeldInflationTests {
    private static let features = VirtioFeature.version1 | BalloonFeature.mustTellHost | BalloonFeature.statsQueue

    private struct Live {
        let fixture: BalloonFixture
        var inflate: TestDriver
        var deflate: TestDriver
        var next: UInt16 = 0

        init(features: UInt64 = BalloonHeldInflationTests.features, hugePages: Bool = true) throws {
            fixture = try BalloonFixture(options: .init(statisticsInterval: .seconds(1), targetBytes: 8 << 20), hugePages: hugePages)
            #expect(fixture.negotiate(features))
            inflate = TestDriver(memory: fixture.memory, size: 32, base: 0x10000)
            deflate = TestDriver(memory: fixture.memory, size: 32, base: 0x20000)
            fixture.setUpQueue(0, inflate)
            fixture.setUpQueue(1, deflate)
            fixture.driverOK()
        }

        /// Sends `frames` as one PFN array on queue 0 (inflate) or 1 (deflate), as Linux does.
        mutating func send(_ frames: [UInt64], queue: Int) throws {
            let array = 0x50000 + UInt64(next) * 0x1000
            try fixture.memory.write(frames.flatMap { pfn in (0..<4).map { UInt8(truncatingIfNeeded: pfn >> (8 * UInt64($0))) } }, at: GuestAddress(array))
            if queue == 0 {
                try inflate.setDescriptor(next, address: array, length: UInt32(frames.count * 4))
                try inflate.makeAvailable(next)
            } else {
                try deflate.setDescriptor(next, address: array, length: UInt32(frames.count * 4))
                try deflate.makeAvailable(next)
            }
            next += 1
            fixture.transport.notify(queue: queue)
        }

        /// Writes every page of `frames` as a guest zeroing its allocations does.
        func touch(_ frames: Range<UInt64>) throws {
            for frame in frames { try fixture.memory.store(UInt8(1), at: GuestAddress(frame << 12)) }
        }

        func resident(_ frames: Range<UInt64>) -> UInt64 {
            fixture.memory.residentBytes(in: GuestRange(start: GuestAddress(frames.lowerBound << 12), length: UInt64(frames.count) << 12)!)
        }
    }

    @Test func twoRequestsFillingAHugePageCostOneDiscard() throws {
        var live = try Live()
        try live.touch(0x400..<0x600)
        try live.send((0x400..<0x500).reversed(), queue: 0)
        #expect(live.fixture.counters.inflateDiscardCalls == 0)
        #expect(live.resident(0x400..<0x500) == 1 << 20) // held
        try live.send((0x500..<0x600).reversed(), queue: 0)
        let counters = live.fixture.counters
        #expect(counters.inflatedPages == 512)
        #expect(counters.inflateDiscardCalls == 1)
        #expect(counters.inflateDiscardedBytes == 2 << 20)
        #expect(live.resident(0x400..<0x600) == 0)
    }

    /// The driver may use deflated pages once answered: what waits is discarded before that.
    @Test func aDeflationDiscardsWhatWaitsBeforeItIsAnswered() throws {
        var live = try Live()
        try live.touch(0x400..<0x500)
        try live.send(Array(0x400..<0x500), queue: 0)
        #expect(live.resident(0x400..<0x500) == 1 << 20)
        try live.send(Array(0x400..<0x480), queue: 1)
        #expect(try live.deflate.usedIndex() == 1)
        #expect(live.resident(0x400..<0x500) == 0)
        #expect(live.fixture.counters.deflatedPages == 128)
        #expect(live.fixture.counters.inflateDiscardedBytes == 1 << 20)
    }

    /// The driver writes `actual` after each request: once it reaches the target, no more pages
    /// come, and what waits is discarded then.
    @Test func actualAtTheTargetDiscardsWhatWaits() throws {
        var live = try Live()
        try live.touch(0x400..<0x500)
        try live.send(Array(0x400..<0x500), queue: 0)
        live.fixture.transport.write32(VirtioMMIORegister.config + 4, 256)
        #expect(live.resident(0x400..<0x500) == 1 << 20)
        live.fixture.transport.write32(VirtioMMIORegister.config + 4, 2048) // the target: 8 MiB
        #expect(live.resident(0x400..<0x500) == 0)
        #expect(live.fixture.counters.inflateDiscardedBytes == 1 << 20)
    }

    /// Pages no request joined for a tick are discarded by the next one.
    @Test func theStatisticsTimerDiscardsWhatStoppedGrowing() throws {
        var live = try Live()
        try live.touch(0x400..<0x410)
        try live.send(Array(0x400..<0x410), queue: 0)
        live.fixture.transport.tick()
        #expect(live.resident(0x400..<0x410) == 16 << 12)
        live.fixture.transport.tick()
        #expect(live.resident(0x400..<0x410) == 0)
    }

    @Test func withoutMustTellHostOrHugePagesEachRequestIsDiscardedAtOnce() throws {
        for (features, hugePages) in [(Self.features & ~BalloonFeature.mustTellHost, true), (Self.features, false)] {
            var live = try Live(features: features, hugePages: hugePages)
            try live.touch(0x400..<0x500)
            try live.send((0x400..<0x500).reversed(), queue: 0)
            #expect(live.fixture.counters.inflateDiscardCalls == 1)
            #expect(live.resident(0x400..<0x500) == 0)
        }
    }
}
