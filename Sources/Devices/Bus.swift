import Synchronization

/// A device register window on a bus: port I/O or MMIO, addressed by offset from its base.
/// Devices know nothing of KVM, so they are tested with plain byte buffers.
public protocol BusDevice: AnyObject, Sendable {
    /// Fills `data` (1 to 8 bytes) with the value read at `offset`.
    func read(offset: UInt64, data: UnsafeMutableRawBufferPointer)
    func write(offset: UInt64, data: UnsafeRawBufferPointer)
}

/// Routes accesses to the device whose window holds the address. Built once, then read-only, so
/// vCPU threads look devices up without a lock. Accesses nobody claims are counted and ignored:
/// a guest probing for hardware must never stop the VMM.
public final class Bus: Sendable {
    public struct Window: Sendable {
        public let base: UInt64
        public let length: UInt64
        public let device: any BusDevice

        public init(base: UInt64, length: UInt64, device: any BusDevice) {
            self.base = base
            self.length = length
            self.device = device
        }
    }

    public let name: String
    private let windows: [Window]
    private let unclaimedCount = Atomic<UInt64>(0)

    /// Fails on overlapping windows: that is Ebb's bug, not the guest's.
    public init(name: String, windows: [Window]) throws {
        let sorted = windows.sorted { $0.base < $1.base }
        for (left, right) in zip(sorted, sorted.dropFirst()) where left.base + left.length > right.base {
            throw BusError.overlap(bus: name, at: right.base)
        }
        self.name = name
        self.windows = sorted
    }

    /// Accesses no device claimed so far.
    public var unclaimedAccesses: UInt64 { unclaimedCount.load(ordering: .relaxed) }

    private func window(for address: UInt64, length: Int) -> (Window, UInt64)? {
        for window in windows where address >= window.base && address - window.base < window.length {
            let offset = address - window.base
            // An access straddling the window's end is not the device's to answer.
            guard UInt64(length) <= window.length - offset else { return nil }
            return (window, offset)
        }
        return nil
    }

    public func read(address: UInt64, data: UnsafeMutableRawBufferPointer) {
        guard let (window, offset) = window(for: address, length: data.count) else {
            unclaimedCount.add(1, ordering: .relaxed)
            // Open bus: all ones, as on a PC with nothing decoding the address.
            for index in data.indices { data[index] = 0xff }
            return
        }
        window.device.read(offset: offset, data: data)
    }

    public func write(address: UInt64, data: UnsafeRawBufferPointer) {
        guard let (window, offset) = window(for: address, length: data.count) else {
            unclaimedCount.add(1, ordering: .relaxed)
            return
        }
        window.device.write(offset: offset, data: data)
    }
}

public enum BusError: Error, CustomStringConvertible {
    case overlap(bus: String, at: UInt64)
    public var description: String {
        switch self {
        case let .overlap(bus, address): return "\(bus) bus: two devices claim 0x\(String(address, radix: 16))"
        }
    }
}
