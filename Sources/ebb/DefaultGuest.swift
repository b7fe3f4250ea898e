#if canImport(Glibc)
import Glibc
#endif

/// Finds the project's test kernel, the guest `ebb run` boots when no kernel is given.
enum DefaultGuest {
    static let relativePath = "guest/build/ebb-test-kernel.elf"
    static let environmentVariable = "EBB_DEFAULT_KERNEL"

    /// `$EBB_DEFAULT_KERNEL`, else the first `guest/build/ebb-test-kernel.elf` found walking up from
    /// the executable (it lives in `<checkout>/.build/<triple>/<config>/ebb`).
    static func kernelPath() -> String? {
        if let value = getenv(environmentVariable) { return String(cString: value) }
        var directory = executableDirectory()
        for _ in 0..<6 {
            guard let current = directory else { return nil }
            let candidate = current + "/" + relativePath
            if access(candidate, R_OK) == 0 { return candidate }
            directory = parent(of: current)
        }
        return nil
    }

    private static func executableDirectory() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, Int(PATH_MAX))
        guard length > 0 else { return nil }
        return parent(of: String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    private static func parent(of path: String) -> String? {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return nil }
        return String(path[..<slash])
    }
}
