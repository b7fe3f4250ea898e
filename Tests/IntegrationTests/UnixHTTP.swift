import Foundation

/// One HTTP/1.1 request over a Unix socket, as a tool driving ebb's API would send it.
func unixHTTP(_ socketPath: String, _ method: String, _ path: String, body: String = "") throws -> (status: Int, body: String) {
    let fd = try unixConnect(socketPath)
    defer { close(fd) }
    let request = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    // MSG_NOSIGNAL: a server that already closed (one that refuses the connection) is an answer
    // to read, not a SIGPIPE that ends the test run.
    _ = request.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
    return readHTTPResponse(fd)
}

/// Everything the server sends until it closes, as a status and a body.
func readHTTPResponse(_ fd: Int32) -> (status: Int, body: String) {
    var response = [UInt8]()
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = recv(fd, &chunk, chunk.count, 0)
        guard count > 0 else { break }
        response += chunk[0..<count]
    }
    let text = String(decoding: response, as: UTF8.self)
    let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
    let payload = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
    return (status, payload)
}

/// A connected stream socket to `socketPath`; the caller closes it.
func unixConnect(_ socketPath: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { buffer in
        for (index, byte) in socketPath.utf8.prefix(buffer.count - 1).enumerated() { buffer[index] = byte }
    }
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard connected == 0 else {
        let error = errno
        close(fd)
        throw TestFailure("connect \(socketPath): errno \(error)")
    }
    return fd
}
