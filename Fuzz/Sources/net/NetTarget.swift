import CFuzz
import FuzzSupport
import Glibc
import Virtio

/// virtio-net's receive and transmit queues behind the transport, on a real tap in a network
/// namespace of the target's own: the transmit chains (virtio-net headers and frames) as the
/// fuzzer writes them go to the tap; the frames the fuzzer sends into the tap come back through
/// the receive queue into whatever buffers the image describes.
enum FuzzNetwork {
    static let tap = "ebbfuzz0"
    /// The packet socket that sends frames into the tap, made once per process.
    static let injector: Int32 = {
        let fd = ebb_fuzz_private_tap(tap)
        guard fd >= 0 else { fatalError("net target: no private tap (needs root for a network namespace): \(String(cString: strerror(errno)))") }
        return fd
    }()
}

func fuzzNet(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let injector = FuzzNetwork.injector
    let device: NetDevice
    do { device = try NetDevice(options: .init(tap: FuzzNetwork.tap)) } catch { fatalError("net target: \(error)") }
    // What an earlier input left in the tap would make this one depend on it.
    var scratch = [UInt8](repeating: 0, count: 65536)
    let tapDescriptor = device.hostEventSources[0]
    while read(tapDescriptor, &scratch, scratch.count) > 0 {}
    let driver = FuzzDriver(device: device)
    // The first bytes: up to three frames for the guest, each a length and its bytes.
    var input = FuzzInput(start, count)
    for _ in 0..<Int(input.byte() % 4) {
        let frame = input.bytes(Int(input.integer(UInt16.self) % 2048))
        if frame.count >= 14 { _ = frame.withUnsafeBytes { send(injector, $0.baseAddress, $0.count, 0) } }
    }
    fuzzDevice(driver, &input)
    return 0
}
