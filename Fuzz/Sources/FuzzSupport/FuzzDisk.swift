import Glibc

/// A real 1 MiB disk image file for the targets with a disk behind them, made once per process
/// and removed at exit.
public enum FuzzDisk {
    public static let path: String = {
        var template = Array("/tmp/ebb-fuzz-disk-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0, ftruncate(fd, 1 << 20) == 0 else { fatalError("fuzz disk image: errno \(errno)") }
        close(fd)
        let path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        pathForExit = path
        atexit { unlink(FuzzDisk.pathForExit) }
        return path
    }()
    nonisolated(unsafe) static var pathForExit = ""
}
