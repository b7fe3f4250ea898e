import FuzzSupport
import Virtio

/// virtio-balloon's four queues (inflate, deflate, statistics, free page reporting) behind the
/// transport, with whatever descriptors, PFN arrays and statistics the fuzzer writes.
func fuzzBalloon(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let options = BalloonDevice.Options(freePageReporting: true, deflateOnOOM: true, statisticsInterval: .seconds(1), targetBytes: 0x10000)
    fuzzDevice(FuzzDriver(device: BalloonDevice(options: options)), start, count)
    return 0
}
