import Foundation
import GuestMemory
import Testing
@testable import Virtio

/// A driver that writes random bytes where a ring should be: descriptor tables, avail rings and
/// request headers of every shape, mostly nonsense, some of it almost right. Whatever the guest
/// writes, a device either serves a request, answers it with a status, or throws a `QueueError`
/// (the device then needs a reset): it never traps, and never touches memory outside guest RAM
/// (which would crash this process). Seeded, so a failure repeats.
@Suite struct RandomDriverTests {
    static let rounds = 10000
    static let queueSize: UInt16 = 16

    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
        mutating func below(_ bound: UInt64) -> UInt64 { next() % bound }
        mutating func chance(_ percent: UInt64) -> Bool { below(100) < percent }
    }

    /// An address: inside RAM (often near the rings' buffers), at its edge, or anywhere.
    static func address(_ random: inout Random, ram: UInt64) -> UInt64 {
        switch random.below(4) {
        case 0: return 0x20000 + random.below(0x10000)
        case 1: return ram - random.below(0x2000)
        case 2: return random.below(ram)
        default: return random.next()
        }
    }

    static func length(_ random: inout Random) -> UInt32 {
        switch random.below(5) {
        case 0: return UInt32(random.below(32))
        case 1: return 16
        case 2: return 512 * UInt32(random.below(16))
        case 3: return 1
        default: return UInt32(truncatingIfNeeded: random.next())
        }
    }

    /// Fills the rings (and a little memory the descriptors may point at) with one random request.
    static func scribble(_ driver: TestDriver, _ random: inout Random, memory: GuestMemory) throws {
        let ram = memory.sizeBytes
        for index in 0..<queueSize {
            let flags = UInt16(truncatingIfNeeded: random.chance(70) ? random.below(4) : random.next())
            let next = random.chance(80) ? (index + 1) % queueSize : UInt16(truncatingIfNeeded: random.next())
            try driver.setDescriptor(index, address: address(&random, ram: ram), length: length(&random), flags: flags, next: next)
        }
        for slot in 0..<UInt64(queueSize) {
            let head = random.chance(80) ? UInt16(random.below(UInt64(queueSize))) : UInt16(truncatingIfNeeded: random.next())
            try memory.store(head, at: GuestAddress(driver.availRing + 4 + 2 * slot))
        }
        // A request header the descriptors may point at: a real type and sector, or noise.
        try memory.store(UInt32(random.chance(70) ? [0, 1, 4, 8, 11, 13][Int(random.below(6))] : random.next() & 0xffff_ffff), at: GuestAddress(0x20000))
        try memory.store(random.chance(50) ? random.below(256) : random.next(), at: GuestAddress(0x20008))
        try driver.forceAvailIndex(UInt16(truncatingIfNeeded: random.chance(80) ? random.below(UInt64(queueSize) + 1) : random.next()))
    }

    /// Runs `rounds` random rings through `device`; returns how many rounds each outcome had.
    static func drive(_ device: any VirtioDevice, queues: Int, seed: UInt64) throws -> (served: Int, broken: Int) {
        let memory = try makeMemory()
        var random = Random(state: seed)
        var outcome = (served: 0, broken: 0)
        for _ in 0..<rounds {
            var driver = TestDriver(memory: memory, size: queueSize)
            try driver.clear()
            driver.availIndex = 0
            try scribble(driver, &random, memory: memory)
            _ = device.readConfig(offset: random.chance(50) ? random.below(64) : random.next(), count: Int(random.below(9)))
            do {
                var queue = try SplitQueue(driver.configuration, maximumSize: queueSize, memory: memory)
                _ = try device.process(queueIndex: Int(random.below(UInt64(queues))), queue: &queue, memory: memory)
                outcome.served += 1
            } catch {
                outcome.broken += 1
            }
            device.reset()
            device.activate(features: device.offeredFeatures)
        }
        return outcome
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func aDiskSurvivesRandomRings(seed: UInt64) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ebb-random-\(getpid())-\(seed).img").path
        try Data(count: 64 << 10).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let disk = try BlockDevice(options: .init(path: path, cache: .writeback))
        disk.activate(features: disk.offeredFeatures)
        let outcome = try Self.drive(disk, queues: 1, seed: seed)
        // Both kinds happen: the generator reaches the device's checks, not only the ring's.
        #expect(outcome.served > 0 && outcome.broken > 0, "\(outcome)")
        #expect(disk.counters.ioErrors + disk.counters.unsupported > 0)
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func aBalloonSurvivesRandomRings(seed: UInt64) throws {
        let balloon = BalloonDevice(options: .init(statisticsInterval: .seconds(1)))
        balloon.activate(features: balloon.offeredFeatures)
        let outcome = try Self.drive(balloon, queues: 4, seed: seed)
        #expect(outcome.served > 0 && outcome.broken > 0, "\(outcome)")
    }
}
