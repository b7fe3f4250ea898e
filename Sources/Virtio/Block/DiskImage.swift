import CKVM
import Glibc

/// How the host caches a disk image (QEMU's `cache=`).
public enum DiskCache: String, Sendable, Equatable, CaseIterable {
    /// `O_DIRECT`: the image is not cached a second time in the host's page cache, where no
    /// balloon can reach it; the guest's own page cache is the only one.
    case none
    /// Buffered I/O through the host's page cache.
    case writeback
}

/// Why a disk image cannot be used, in one line.
public struct DiskImageError: Error, Equatable, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "disk image '\(path)': \(reason)" }
}

/// A raw image file (or block device) behind a virtio-blk disk: opened and locked as QEMU opens
/// images (an exclusive lock for read-write, a shared one for read-only), sized in 512-byte
/// sectors, and read and written straight between the file and guest memory.
public final class DiskImage: Sendable {
    public let path: String
    public let readOnly: Bool
    public let sizeBytes: UInt64
    /// Whether `cache=none` is in effect (false where the file system refuses `O_DIRECT`).
    public let direct: Bool
    /// Said once to the user when the requested cache mode could not be had.
    public let notice: String?
    private let fd: Int32
    /// The same file without `O_DIRECT`, for a request whose buffers are not aligned as direct
    /// I/O needs (the host refuses those with EINVAL); -1 when `fd` is buffered already.
    private let bufferedFD: Int32

    public init(path: String, readOnly: Bool, cache: DiskCache) throws(DiskImageError) {
        self.path = path
        self.readOnly = readOnly
        func failure(_ reason: String) -> DiskImageError { DiskImageError(path: path, reason: reason) }

        var info = stat()
        guard stat(path, &info) == 0 else {
            throw failure(errno == ENOENT ? "no such file" : String(cString: strerror(errno)))
        }
        let type = info.st_mode & S_IFMT
        guard type != S_IFDIR else { throw failure("is a directory, not a disk image") }
        guard type == S_IFREG || type == S_IFBLK else { throw failure("is neither a regular file nor a block device") }

        let access = readOnly ? O_RDONLY : O_RDWR
        let flags = access | O_CLOEXEC
        var opened = cache == .none ? open(path, flags | EBB_O_DIRECT) : -1
        var notice: String?
        if cache == .none && opened < 0 && errno == EINVAL {
            notice = "disk image '\(path)': its file system refuses O_DIRECT; using the host's page cache (cache=writeback)"
        }
        if opened < 0 && (cache == .writeback || errno == EINVAL) { opened = open(path, flags) }
        guard opened >= 0 else {
            throw failure(errno == EACCES || errno == EROFS || errno == EPERM
                ? (readOnly ? "no permission to read it" : "no permission to open it for writing (readonly=on opens it read-only)")
                : String(cString: strerror(errno)))
        }
        guard ebb_lock_whole_file(opened, readOnly ? 0 : 1) == 0 else {
            let error = errno
            close(opened)
            throw failure(error == EAGAIN || error == EACCES
                ? "in use by another process, which holds \(readOnly ? "a write lock" : "a lock") on it"
                : "cannot lock it: \(String(cString: strerror(error)))")
        }
        let end = lseek(opened, 0, SEEK_END)
        guard end >= 0 else {
            let error = errno
            close(opened)
            throw failure("cannot find its size: \(String(cString: strerror(error)))")
        }
        guard UInt64(end) % BlockLimits.sectorBytes == 0 else {
            close(opened)
            throw failure("its size, \(end) bytes, is not a multiple of 512")
        }
        direct = cache == .none && notice == nil
        var fallback: Int32 = -1
        if direct {
            fallback = open(path, flags)
            guard fallback >= 0 else {
                let error = errno
                close(opened)
                throw failure(String(cString: strerror(error)))
            }
        }
        fd = opened
        bufferedFD = fallback
        sizeBytes = UInt64(end)
        self.notice = notice
    }

    private init(path: String, readOnly: Bool, sizeBytes: UInt64, direct: Bool, fd: Int32, bufferedFD: Int32) {
        self.path = path
        self.readOnly = readOnly
        self.sizeBytes = sizeBytes
        self.direct = direct
        notice = nil
        self.fd = fd
        self.bufferedFD = bufferedFD
    }

    /// Whether `path` names this very file (its device and inode), under whatever name.
    public func isSameFile(as path: String) -> Bool {
        var mine = stat(), theirs = stat()
        return fstat(fd, &mine) == 0 && stat(path, &theirs) == 0 && mine.st_dev == theirs.st_dev && mine.st_ino == theirs.st_ino
    }

    /// This image again, its size measured anew (a PATCH /drives naming the file a disk already
    /// has: it may have grown). The descriptors are duplicated, not reopened: a second open file
    /// would conflict with this one's lock, and duplicates share it.
    public func remeasured(path newPath: String) throws(DiskImageError) -> DiskImage {
        func failure(_ reason: String) -> DiskImageError { DiskImageError(path: newPath, reason: reason) }
        let end = lseek(fd, 0, SEEK_END)
        guard end >= 0 else { throw failure("cannot find its size: \(String(cString: strerror(errno)))") }
        guard UInt64(end) % BlockLimits.sectorBytes == 0 else { throw failure("its size, \(end) bytes, is not a multiple of 512") }
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw failure(String(cString: strerror(errno))) }
        var bufferedCopy: Int32 = -1
        if bufferedFD >= 0 {
            bufferedCopy = fcntl(bufferedFD, F_DUPFD_CLOEXEC, 0)
            guard bufferedCopy >= 0 else {
                let error = errno
                close(copy)
                throw failure(String(cString: strerror(error)))
            }
        }
        return DiskImage(path: newPath, readOnly: readOnly, sizeBytes: UInt64(end), direct: direct, fd: copy, bufferedFD: bufferedCopy)
    }

    deinit {
        close(fd)
        if bufferedFD >= 0 { close(bufferedFD) }
    }

    public var sectorCount: UInt64 { sizeBytes / BlockLimits.sectorBytes }

    /// Reads the image from `offset` into `buffers`, filling all of them; 0 or an errno.
    func read(into buffers: [UnsafeMutableRawBufferPointer], at offset: UInt64) -> Int32 {
        transfer(buffers, at: offset) { fd, vectors, count, position in preadv(fd, vectors, count, position) }
    }

    /// Writes all of `buffers` to the image from `offset`; 0 or an errno.
    func write(from buffers: [UnsafeMutableRawBufferPointer], at offset: UInt64) -> Int32 {
        transfer(buffers, at: offset) { fd, vectors, count, position in pwritev(fd, vectors, count, position) }
    }

    /// Makes written data durable (the guest's FLUSH); 0 or an errno.
    func flush() -> Int32 { fdatasync(fd) == 0 ? 0 : errno }

    /// Deallocates the range (the guest's DISCARD): the file becomes sparse there and reads zeros.
    func discard(offset: UInt64, length: UInt64) -> Int32 {
        allocate(EBB_FALLOC_FL_PUNCH_HOLE | EBB_FALLOC_FL_KEEP_SIZE, offset: offset, length: length)
    }

    /// Makes the range read as zeros (the guest's WRITE_ZEROES); `unmap` lets it be deallocated.
    /// Where the file system has neither call, zeros are written.
    func writeZeroes(offset: UInt64, length: UInt64, unmap: Bool) -> Int32 {
        let mode = unmap ? EBB_FALLOC_FL_PUNCH_HOLE | EBB_FALLOC_FL_KEEP_SIZE : EBB_FALLOC_FL_ZERO_RANGE | EBB_FALLOC_FL_KEEP_SIZE
        let result = allocate(mode, offset: offset, length: length)
        guard result == EOPNOTSUPP else { return result }
        return writeZeroBytes(offset: offset, length: length)
    }

    private func allocate(_ mode: Int32, offset: UInt64, length: UInt64) -> Int32 {
        ebb_fallocate(fd, mode, Int64(offset), Int64(length)) == 0 ? 0 : errno
    }

    private func writeZeroBytes(offset: UInt64, length: UInt64) -> Int32 {
        let chunk = 1 << 20
        guard let zeros = aligned(bytes: chunk) else { return ENOMEM }
        defer { free(zeros.baseAddress) }
        zeros.initializeMemory(as: UInt8.self, repeating: 0)
        var done: UInt64 = 0
        while done < length {
            let count = Int(min(UInt64(chunk), length - done))
            let result = write(from: [UnsafeMutableRawBufferPointer(rebasing: zeros[0..<count])], at: offset + done)
            guard result == 0 else { return result }
            done += UInt64(count)
        }
        return 0
    }

    private func aligned(bytes: Int) -> UnsafeMutableRawBufferPointer? {
        var pointer: UnsafeMutableRawPointer?
        guard posix_memalign(&pointer, 4096, bytes) == 0, let pointer else { return nil }
        return UnsafeMutableRawBufferPointer(start: pointer, count: bytes)
    }

    /// preadv/pwritev until every buffer is done: a call may move fewer bytes than asked, or be
    /// interrupted. Under O_DIRECT a request the host refuses for its alignment (EINVAL) is
    /// redone through the buffered descriptor.
    /// IOV_MAX: the most buffers one preadv/pwritev takes.
    private static let maximumVectors = 1024

    private func transfer(_ buffers: [UnsafeMutableRawBufferPointer], at offset: UInt64,
                          _ call: (Int32, UnsafePointer<iovec>, Int32, Int) -> Int) -> Int32 {
        var vectors = buffers.filter { $0.count > 0 }.map { iovec(iov_base: $0.baseAddress, iov_len: $0.count) }
        var first = 0
        var position = Int(offset)
        var descriptor = fd
        while first < vectors.count {
            let count = Int32(min(vectors.count - first, Self.maximumVectors))
            let moved = vectors.withUnsafeBufferPointer { call(descriptor, $0.baseAddress! + first, count, position) }
            if moved < 0 {
                if errno == EINTR { continue }
                if errno == EINVAL && descriptor == fd && bufferedFD >= 0 {
                    descriptor = bufferedFD
                    continue
                }
                return errno
            }
            // Nothing moved: the file ends before the request (it shrank under Ebb).
            guard moved > 0 else { return EIO }
            position += moved
            var remaining = moved
            while remaining > 0 && first < vectors.count {
                if remaining >= vectors[first].iov_len {
                    remaining -= vectors[first].iov_len
                    first += 1
                } else {
                    vectors[first].iov_base = vectors[first].iov_base.map { $0 + remaining }
                    vectors[first].iov_len -= remaining
                    remaining = 0
                }
            }
        }
        return 0
    }
}
