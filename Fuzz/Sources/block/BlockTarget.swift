import FuzzSupport
import Glibc
import Virtio

/// virtio-blk's request queue behind the transport: request headers, sectors, data buffers and
/// status bytes as the fuzzer writes them, against a real 1 MiB disk image file.

func fuzzBlock(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    // Read-only and writable disks take different paths for writes and flushes.
    let readOnly = count > 0 && start.pointee & 1 == 1
    let device: BlockDevice
    do { device = try BlockDevice(options: .init(path: FuzzDisk.path, readOnly: readOnly, serial: "fuzz")) } catch {
        fatalError("fuzz disk image: \(error)")
    }
    fuzzDevice(FuzzDriver(device: device), start, count)
    return 0
}
