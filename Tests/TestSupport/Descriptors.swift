import EventCore
import Glibc

/// A connected pair of non-blocking Unix stream sockets, closed after `body`.
public func withSocketPair<T>(_ body: (Int32, Int32) throws -> T) throws -> T {
    let (a, b) = try makeSocketPair()
    defer {
        close(a)
        close(b)
    }
    return try body(a, b)
}

/// A connected pair of non-blocking Unix stream sockets; the caller closes them.
public func makeSocketPair() throws -> (Int32, Int32) {
    var fds: [Int32] = [-1, -1]
    _ = try systemCall("socketpair") { socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) }
    return (fds[0], fds[1])
}

/// A non-blocking pipe (read end, write end), closed after `body`.
public func withPipe<T>(_ body: (Int32, Int32) throws -> T) throws -> T {
    let fds = try makePipe(nonBlocking: true)
    defer {
        close(fds[0])
        close(fds[1])
    }
    return try body(fds[0], fds[1])
}

/// Writes `text` fully to a descriptor (small writes on a fresh socket or pipe never block).
@discardableResult
public func writeString(_ fd: Int32, _ text: String) -> Int {
    var text = text
    return text.withUTF8 { write(fd, $0.baseAddress, $0.count) }
}

/// Reads what is available now (up to 64 KiB) as a string; "" at EOF or would-block.
public func readAvailable(_ fd: Int32) -> String {
    var buffer = [UInt8](repeating: 0, count: 65536)
    let n = read(fd, &buffer, buffer.count)
    return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : ""
}

/// The number of descriptors this process has open (entries of /proc/self/fd).
public func openDescriptorCount() -> Int {
    guard let dir = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(dir) }
    var count = 0
    while readdir(dir) != nil { count += 1 }
    return count - 3 // ".", ".." and the directory's own descriptor
}

/// A unique path in the temporary directory (not created).
public func temporaryPath(_ name: String) -> String {
    "/tmp/swift-libev-\(getpid())-\(UInt32.random(in: 0...UInt32.max))-\(name)"
}

/// The monotonic clock in seconds.
public func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// A pipe (read end, write end), close-on-exec, optionally non-blocking.
/// (glibc's pipe2 is not visible to Swift, so this sets the flags with fcntl.)
public func makePipe(nonBlocking: Bool) throws -> [Int32] {
    var fds: [Int32] = [-1, -1]
    _ = try systemCall("pipe") { pipe(&fds) }
    for fd in fds {
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        if nonBlocking { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
    }
    return fds
}

/// Writes `text` to the file at `path`, replacing what it held.
public func writeFile(_ path: String, _ text: String) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    _ = text.withCString { write(fd, $0, strlen($0)) }
    close(fd)
}
