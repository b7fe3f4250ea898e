#if canImport(Glibc)
import Glibc
#endif

/// Reads a whole file named by the user, mapping failures to messages that name its role.
func readWholeFile(_ path: String, role: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
        let error = errno
        if error == ENOENT || error == ENOTDIR { throw ConfigurationError.fileMissing(role: role, path: path) }
        throw ConfigurationError.fileUnreadable(role: role, path: path, errno: error)
    }
    defer { close(fd) }
    var status = stat()
    guard fstat(fd, &status) == 0 else { throw ConfigurationError.fileUnreadable(role: role, path: path, errno: errno) }
    guard status.st_mode & S_IFMT == S_IFREG else { throw ConfigurationError.fileUnreadable(role: role, path: path, errno: EISDIR) }
    var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
    var done = 0
    while done < bytes.count {
        let count = bytes.withUnsafeMutableBytes { buffer -> Int in
            guard let base = buffer.baseAddress else { return 0 }
            return read(fd, base + done, buffer.count - done)
        }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else {
            throw ConfigurationError.fileUnreadable(role: role, path: path, errno: count < 0 ? errno : EIO)
        }
        done += count
    }
    return bytes
}

/// The host's physical RAM, the ceiling for guest memory.
func hostPhysicalMemoryBytes() -> UInt64 {
    UInt64(sysconf(Int32(_SC_PHYS_PAGES))) * UInt64(sysconf(Int32(_SC_PAGESIZE)))
}
