import GuestMemory
import Virtio

/// A driver that works a device through its transport's registers, as Linux's virtio_mmio does,
/// with features, queue sizes and then notifications chosen by the fuzzer.
public struct FuzzDriver {
    public let transport: VirtioMMIOTransport

    /// `device` behind a transport on `FuzzGuest.memory`; breaks and interrupts go nowhere (a
    /// fuzzer prints nothing per input).
    public init(device: sending any VirtioDevice) {
        transport = VirtioMMIOTransport(device: device, memory: FuzzGuest.memory, interrupt: {}, onBroken: { _ in })
    }

    public func write(_ offset: UInt64, _ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { transport.write(offset: offset, data: $0) }
    }

    public func read(_ offset: UInt64) -> UInt32 {
        var value: UInt32 = 0
        withUnsafeMutableBytes(of: &value) { transport.read(offset: offset, data: $0) }
        return UInt32(littleEndian: value)
    }

    /// Resets the device, then negotiates (the device's features masked by `input`, VERSION_1
    /// always), sets up every queue the device has with a size from `input` and the rings at
    /// `FuzzGuest.ringBase`, and sets DRIVER_OK (which makes the device look at every queue).
    public func bringUp(_ input: inout FuzzInput) {
        write(VirtioMMIORegister.status, 0)
        write(VirtioMMIORegister.status, VirtioStatus.acknowledge | VirtioStatus.driver)
        let features = (transport.offeredFeatures & input.integer(UInt64.self)) | VirtioFeature.version1
        for select: UInt32 in [0, 1] {
            write(VirtioMMIORegister.driverFeaturesSelect, select)
            write(VirtioMMIORegister.driverFeatures, UInt32(truncatingIfNeeded: features >> (32 * UInt64(select))))
        }
        write(VirtioMMIORegister.status, VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK)
        for queue in 0..<Self.maximumQueues {
            write(VirtioMMIORegister.queueSelect, UInt32(queue))
            let maximum = read(VirtioMMIORegister.queueSizeMax)
            guard maximum > 0 else { break }
            // Mostly a power of two up to the maximum; sometimes anything.
            let choice = input.byte()
            let size = choice < 0xf0 ? min(maximum, 1 << UInt32(choice % 9)) : UInt32(input.integer(UInt16.self))
            let base = FuzzGuest.ringBase(queue: queue)
            write(VirtioMMIORegister.queueSize, size)
            write(VirtioMMIORegister.queueDescriptorLow, UInt32(base))
            write(VirtioMMIORegister.queueDriverLow, UInt32(base + 0x1000))
            write(VirtioMMIORegister.queueDeviceLow, UInt32(base + 0x2000))
            write(VirtioMMIORegister.queueReady, 1)
        }
        write(VirtioMMIORegister.status, VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK | VirtioStatus.driverOK)
    }

    /// Queues past the device's are probed too (their QueueSizeMax reads 0).
    public static let maximumQueues = 5

    /// The driver's side after bring-up, one operation per two bytes of `input`: notify a queue
    /// (sometimes one that does not exist), publish more of the avail ring, run the device's
    /// timed work or its host event, acknowledge interrupts, or reset and start over.
    public func drive(_ input: inout FuzzInput, operations: Int = 64) {
        for _ in 0..<operations where !input.isAtEnd {
            let kind = input.byte()
            let argument = input.byte()
            switch kind % 7 {
            case 0, 1: transport.notify(queue: Int(argument % UInt8(Self.maximumQueues + 1)))
            case 2:
                // The driver adds chains: avail idx moves on over what the image put in the ring.
                let queue = Int(argument % UInt8(Self.maximumQueues))
                let index = GuestAddress(FuzzGuest.ringBase(queue: queue) + 0x1000 + 2)
                let current = (try? FuzzGuest.memory.load(UInt16.self, at: index)) ?? 0
                try? FuzzGuest.memory.store(current &+ UInt16(argument >> 3), at: index)
                transport.notify(queue: queue)
            case 3: transport.tick()
            case 4: if !transport.hostEventSources.isEmpty { transport.hostEvent(source: 0) }
            case 5: write(VirtioMMIORegister.interruptACK, UInt32(argument))
            default:
                if argument == 0 { bringUp(&input) }
            }
        }
    }
}

/// One input for a device target: the features and queue sizes, the guest RAM image, then the
/// driver's operations. The image comes first in RAM but second in the input after a length, so
/// the fuzzer can grow either part.
public func fuzzDevice(_ driver: FuzzDriver, _ start: UnsafeRawPointer, _ count: Int) {
    var input = FuzzInput(start, count)
    fuzzDevice(driver, &input)
}

/// The same from where `input` has got to (a target that took its own bytes first).
public func fuzzDevice(_ driver: FuzzDriver, _ input: inout FuzzInput) {
    let imageBytes = Int(input.integer(UInt16.self))
    FuzzGuest.load(image: input.bytes(imageBytes))
    driver.bringUp(&input)
    driver.drive(&input)
}
