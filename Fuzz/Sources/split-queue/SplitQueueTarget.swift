import FuzzSupport
import GuestMemory
import Virtio

/// The split queue alone: a queue configuration (size, ring addresses anywhere, event indices and
/// indirect tables or not), RAM as the fuzzer writes it, then chains popped and returned. Every
/// chain the queue hands out must lie in RAM and be no longer than the queue (plus one indirect
/// table); anything else it must refuse with a `QueueError`.
func fuzzSplitQueue(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    var input = FuzzInput(start, count)
    var configuration = QueueConfiguration(size: input.integer(UInt16.self))
    // Rings mostly where the image puts them, sometimes anywhere.
    let placement = input.byte()
    configuration.descriptorTable = placement & 1 == 0 ? 0 : input.integer(UInt64.self)
    configuration.availRing = placement & 2 == 0 ? 0x1000 : input.integer(UInt64.self)
    configuration.usedRing = placement & 4 == 0 ? 0x2000 : input.integer(UInt64.self)
    let maximum = input.integer(UInt16.self)
    FuzzGuest.load(image: input.rest())
    let memory = FuzzGuest.memory
    // Bit 3 of the placement byte: VIRTIO_F_RING_EVENT_IDX negotiated (used_event, avail_event);
    // bit 4: VIRTIO_F_INDIRECT_DESC.
    let indirect = placement & 16 != 0
    guard var queue = try? SplitQueue(configuration, maximumSize: maximum, memory: memory, eventIndex: placement & 8 != 0,
                                      indirectDescriptors: indirect) else { return 0 }
    let longestChain = Int(queue.size) + (indirect ? SplitQueue.maximumIndirectEntries : 0)
    precondition(queue.size == configuration.size && queue.size <= maximum)
    for _ in 0..<Int(queue.size) * 2 {
        let chain: DescriptorChain?
        do { chain = try queue.popChain(memory: memory) } catch { return 0 }
        guard let chain else { return 0 }
        precondition(chain.head < queue.size && !chain.descriptors.isEmpty && chain.descriptors.count <= longestChain)
        for descriptor in chain.descriptors where descriptor.length > 0 {
            precondition(memory.contains(descriptor.address, length: UInt64(descriptor.length)), "a chain outside RAM")
        }
        do { try queue.pushUsed(head: chain.head, length: chain.descriptors.first?.length ?? 0, memory: memory) } catch { return 0 }
        _ = queue.wantsInterrupt(memory: memory)
        queue.setNotifications(enabled: chain.head & 1 == 0, memory: memory)
    }
    return 0
}
