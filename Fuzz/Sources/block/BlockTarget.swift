import FuzzSupport
import Glibc
import Virtio

/// virtio-blk's request queue behind the transport: request headers, sectors, data buffers and
/// status bytes as the fuzzer writes them, against a real 1 MiB disk image file.
let diskPath: String = {
    var template = Array("/tmp/ebb-fuzz-disk-XXXXXX".utf8CString)
    let fd = mkstemp(&template)
    guard fd >= 0, ftruncate(fd, 1 << 20) == 0 else { fatalError("fuzz disk image: \(String(cString: strerror(errno)))") }
    close(fd)
    let path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    atexit { unlink(diskPathForExit) }
    diskPathForExit = path
    return path
}()
nonisolated(unsafe) var diskPathForExit = ""

func fuzzBlock(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    // Read-only and writable disks take different paths for writes and flushes.
    let readOnly = count > 0 && start.pointee & 1 == 1
    let device: BlockDevice
    do { device = try BlockDevice(options: .init(path: diskPath, readOnly: readOnly, serial: "fuzz")) } catch {
        fatalError("fuzz disk image: \(error)")
    }
    fuzzDevice(FuzzDriver(device: device), start, count)
    return 0
}
