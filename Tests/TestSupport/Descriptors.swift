import CLinux
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

/// A pipe (read end, write end), close-on-exec from the start (`pipe2`:
/// the tests run in one process beside tests that spawn programs, and an
/// end a child inherits would keep the pipe open after the test closes it),
/// optionally non-blocking.
public func makePipe(nonBlocking: Bool) throws -> [Int32] {
    var fds: [Int32] = [-1, -1]
    _ = try systemCall("pipe2") { CLinux_pipe2(&fds, CLinux_O_CLOEXEC | (nonBlocking ? O_NONBLOCK : 0)) }
    return fds
}

/// Waits until `fd` is readable (data, end of stream or an error) for at
/// most `timeout` seconds, then reads one byte: the read's result (0 is end
/// of stream; -1 if it never became readable). A peer's close reaches the
/// other end only when the last copy of its descriptor closes - and a
/// program another test is spawning holds a copy of every descriptor until
/// its `exec` - so a test that closed one end waits for the end of stream
/// rather than reading once.
public func readOnceReadable(_ fd: Int32, timeout: Double = 20) -> Int {
    var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    let deadline = monotonicSeconds() + timeout
    while monotonicSeconds() < deadline {
        let ready = poll(&entry, 1, 100)
        if ready < 0 && errno != EINTR { return -1 }
        if ready > 0 {
            var byte: UInt8 = 0
            let count = read(fd, &byte, 1)
            if count < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            return count
        }
    }
    return -1
}

/// Waits until `condition` holds, checking every `interval` seconds (a
/// millisecond by default); false after `timeout` seconds.
public func waitUntil(timeout: Double = 10, every interval: Double = 0.001, _ condition: () -> Bool) -> Bool {
    let deadline = monotonicSeconds() + timeout
    while !condition() {
        if monotonicSeconds() > deadline { return false }
        usleep(useconds_t(interval * 1e6))
    }
    return true
}

/// Whether a blocking connect to `address` is refused within `timeout`
/// seconds, trying every 10 ms: a closed listener's port refuses at once -
/// unless a program another test is spawning holds a copy of the listening
/// socket until its `exec`; then the refusal comes a moment later.
public func connectIsRefused(_ address: SocketAddress, timeout: Double = 20) -> Bool {
    waitUntil(timeout: timeout, every: 0.01) {
        guard let probe = try? SocketDescriptor.stream(address.family) else { return false }
        defer { probe.close() }
        _ = fcntl(probe.fd, F_SETFL, fcntl(probe.fd, F_GETFL) & ~O_NONBLOCK)
        return caughtError { _ = try probe.connect(to: address) }?.errno == .connectionRefused
    }
}

/// Writes `text` to the file at `path`, replacing what it held.
public func writeFile(_ path: String, _ text: String) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    _ = text.withCString { write(fd, $0, strlen($0)) }
    close(fd)
}

// MARK: descriptor numbers no other test is handed

/// How many reserved numbers this process has handed out (a pthread lock:
/// ThreadSanitizer sees it, not the standard library's Mutex).
private let reservedNumbersHandedOut = LockedValue<Int32>(0)

/// A descriptor number of this test's own, near the top of the process's
/// limit, that nothing holds now and no other test will ever be handed.
///
/// Tests run in parallel in one process, and the kernel gives every new
/// descriptor the lowest free number: a test that closes a descriptor and
/// then uses its number (to see a closed descriptor refused, or an error
/// reported) would find another test's new socket there at any moment.
/// Numbers up here are never the lowest free one, so once closed they stay
/// closed; each is handed out once per process.
public func reservedDescriptorNumber() -> Int32 {
    var limit = rlimit()
    getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    let top = Int32(min(limit.rlim_cur, 16_384)) - 1
    while true {
        let number = reservedNumbersHandedOut.withLock { taken -> Int32 in
            taken += 1
            return top - taken
        }
        precondition(number > 4_096, "reservedDescriptorNumber: the reserved range is used up (limit \(limit.rlim_cur))")
        if fcntl(number, F_GETFD) == -1 { return number }
    }
}

/// Moves `fd` to a ``reservedDescriptorNumber()`` (close-on-exec; the file's
/// status flags, `O_NONBLOCK` among them, are the open file's and come along)
/// and closes the old number: a descriptor the test may close and then use the number
/// of, knowing it stays closed.
public func movedToReservedNumber(_ fd: Int32) -> Int32 {
    let number = reservedDescriptorNumber()
    let moved = duplicate(fd, onto: number)
    precondition(moved == number, "dup3(\(fd), \(number)) failed: errno \(errno)")
    close(fd)
    return number
}

/// `dup3(fd, number, O_CLOEXEC)`: closes what `number` was and makes it a
/// close-on-exec copy of `fd`, in one step - so that no program another test
/// is spawning keeps the file open (`dup2` would clear the flag, and setting
/// it again after leaves a window in which a spawn inherits the copy).
/// Returns `number`, or -1 if dup3 failed (`fd` == `number` among the reasons).
@discardableResult
public func duplicate(_ fd: Int32, onto number: Int32) -> Int32 {
    CLinux_dup3(fd, number, CLinux_O_CLOEXEC) == number ? number : -1
}

/// ``makeSocketPair()`` with both ends on reserved numbers: for tests that
/// close the pair and then use its numbers.
public func makeReservedSocketPair() throws -> (Int32, Int32) {
    let (a, b) = try makeSocketPair()
    return (movedToReservedNumber(a), movedToReservedNumber(b))
}

/// ``makePipe(nonBlocking:)`` with both ends on reserved numbers.
public func makeReservedPipe(nonBlocking: Bool) throws -> [Int32] {
    try makePipe(nonBlocking: nonBlocking).map(movedToReservedNumber)
}

/// The ``EventLoopError`` `body` throws; nil when it throws nothing or
/// another error - so `#expect(caughtError { ... }?.code == .loopClosed)`
/// fails for both.
public func caughtError(_ body: () throws -> Void) -> EventLoopError? {
    do {
        try body()
        return nil
    } catch {
        return error as? EventLoopError
    }
}
