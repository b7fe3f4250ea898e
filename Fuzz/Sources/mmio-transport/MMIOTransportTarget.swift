import FuzzSupport
import Glibc
import Virtio

/// The virtio-mmio transport driven by any sequence of register accesses: every offset in the
/// window and past it, every width, in any state, with a balloon or a disk behind it and RAM as
/// the fuzzer writes it. Each operation is six bytes: kind, offset, a 32-bit value.

func fuzzMMIOTransport(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    var input = FuzzInput(start, count)
    let device: any VirtioDevice
    if input.byte() & 1 == 0 {
        device = BalloonDevice(options: .init(statisticsInterval: .seconds(1), targetBytes: 0x8000))
    } else {
        do { device = try BlockDevice(options: .init(path: FuzzDisk.path)) } catch { fatalError("fuzz disk image: \(error)") }
    }
    let driver = FuzzDriver(device: device)
    FuzzGuest.load(image: input.bytes(Int(input.integer(UInt16.self))))
    for _ in 0..<256 where !input.isAtEnd {
        let kind = input.byte()
        // Mostly the register window's 32-bit slots; sometimes any byte offset up to 0x400.
        let slot = UInt64(input.byte())
        let offset = kind & 0x80 == 0 ? slot * 4 : slot * 4 + UInt64(kind >> 5 & 3)
        let value = input.integer(UInt32.self)
        let width = [4, 1, 2, 8][Int(kind >> 1 & 3)]
        var bytes = [UInt8](repeating: 0, count: width)
        if kind & 1 == 0 {
            bytes.withUnsafeMutableBytes { driver.transport.read(offset: offset, data: $0) }
        } else {
            withUnsafeBytes(of: value.littleEndian) { value in
                for index in 0..<width { bytes[index] = index < 4 ? value[index] : 0 }
            }
            bytes.withUnsafeBytes { driver.transport.write(offset: offset, data: $0) }
        }
        if kind & 0x18 == 0x18 { driver.transport.tick() }
    }
    return 0
}
