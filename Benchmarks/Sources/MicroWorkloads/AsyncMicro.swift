import CBenchmarks
import EV
import Epoll
import EventCore
import Glibc
import Synchronization

// Async ping-pong: the callback ping-pong's work written with async/await -
// two tasks, each awaiting readability, reading a byte, writing it back
// (await readable, read, write: the same system calls as the callbacks make).

/// The side that serves first: writes a byte, then reads each reply and
/// writes it back, `count` round trips in all. One buffer for the whole run,
/// as the callback version has.
func serve(_ socket: AsyncSocket, count: Int) async throws {
    let byte = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
    defer { byte.deallocate() }
    byte[0] = 120
    try await socket.write(UnsafeRawBufferPointer(byte))
    for trip in 1...count {
        try await socket.waitReadable()
        let got = try await socket.read(into: byte)
        precondition(got == 1, "the peer closed early")
        if trip < count { try await socket.write(UnsafeRawBufferPointer(byte)) }
    }
}

/// The other side: echoes every byte until the stream ends, then closes.
func echo(_ socket: AsyncSocket) async throws {
    let byte = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
    defer { byte.deallocate() }
    while true {
        try await socket.waitReadable()
        if try await socket.read(into: byte) == 0 { break }
        try await socket.write(UnsafeRawBufferPointer(byte))
    }
    socket.close()
}

func makeSocketPair() -> (Int32, Int32) {
    var fds: [Int32] = [-1, -1]
    precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds) == 0)
    return (fds[0], fds[1])
}

/// The timed part of every async ping-pong: `count` round trips between a
/// task serving on `a` and one echoing on `b`, their sockets on `executor`
/// (each caller decides where the two tasks run); returns the seconds.
func timedPingPong(_ a: Int32, _ b: Int32, count: Int, on executor: any EventLoopExecutor) async throws -> Double {
    let ping = AsyncSocket(adopting: SocketDescriptor(FileDescriptor(rawValue: a)), peer: nil, loop: executor)
    let start = cbench_now()
    async let other: Void = echo(AsyncSocket(adopting: SocketDescriptor(FileDescriptor(rawValue: b)), peer: nil, loop: executor))
    try await serve(ping, count: count)
    let elapsed = cbench_now() - start
    ping.close() // ends the echo side
    try await other
    return elapsed
}

/// `count` round trips between two tasks on the loop's executor.
public func asyncPingPongOnLoop(count: Int) -> Double {
    let loop = try! Loop(backends: .epoll)
    let (a, b) = makeSocketPair()
    return try! loop.run { executor in try await timedPingPong(a, b, count: count, on: executor) }
}

/// The same two tasks with no executor preference: they run on Swift's
/// global concurrent executor, and every wait hops onto the loop's thread
/// (a LoopThread on CPU 0) and back.
public func asyncPingPongOnGlobalExecutor(count: Int, loopCPU: Int32) -> Double {
    let (a, b) = makeSocketPair()
    let thread = try! LoopThread { _ in cbench_pin_to_cpu(loopCPU) }
    let executor = thread.executor
    let result = Mutex<Double?>(nil)
    let done = Mutex(false)
    Task.detached {
        let elapsed = try await timedPingPong(a, b, count: count, on: executor)
        result.withLock { $0 = elapsed }
        done.withLock { $0 = true }
    }
    while !done.withLock({ $0 }) { usleep(1000) }
    thread.stop()
    thread.join()
    return result.withLock { $0! }
}

/// Bytes of resident memory per connection while `count` connections each
/// have a task parked in `read()` on the loop (the clients are a separate
/// Python process, so only the server's memory is counted).
public func idleAwaitingConnectionBytes(count: Int) -> Double {
    let loop = try! Loop(backends: .epoll)
    raiseDescriptorLimit()
    return try! loop.run { executor in
        let listener = try AsyncListener(on: SocketAddress(parsing: "0"), loop: executor, backlog: 4096)
        let port = listener.localAddress.port
        let client = try SpawnedClient(["python3", scriptPath("hold_connections.py"), "127.0.0.1", "\(port)", "\(count)"])
        var tasks: [Task<Void, any Error>] = []
        tasks.reserveCapacity(count)
        // Settle the heap first: accept and park one batch, then measure the rest.
        let before = residentBytes()
        for _ in 0..<count {
            let connection = try await listener.accept()
            tasks.append(Task(executorPreference: executor) {
                _ = try await connection.read()
                connection.close()
            })
        }
        try await executor.sleep(for: .milliseconds(200)) // every task reaches its read
        try client.waitForLine("ready")
        let after = residentBytes()
        client.finish()
        for task in tasks { _ = await task.result }
        listener.close()
        return Double(after - before) / Double(count)
    }
}

func residentBytes() -> Int {
    guard let file = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(file) }
    var size = 0, resident = 0
    withUnsafeMutablePointer(to: &size) { sizePointer in
        withUnsafeMutablePointer(to: &resident) { residentPointer in
            _ = withVaList([sizePointer, residentPointer]) { vfscanf(file, "%ld %ld", $0) }
        }
    }
    return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
}

func raiseDescriptorLimit() {
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    limit.rlim_cur = limit.rlim_max
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

/// The benchmarks' scripts folder (next to Sources/).
func scriptPath(_ name: String) -> String {
    var path = #filePath
    for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
    return path + "/scripts/" + name
}

/// A helper process with a pipe to its stdin and from its stdout.
public final class SpawnedClient {
    public let pid: pid_t
    private let input: Int32
    private let output: Int32

    public init(_ command: [String]) throws {
        var toChild: [Int32] = [-1, -1]
        var fromChild: [Int32] = [-1, -1]
        _ = pipe(&toChild)
        _ = pipe(&fromChild)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        posix_spawn_file_actions_addclose(&actions, toChild[1])
        posix_spawn_file_actions_addclose(&actions, fromChild[0])
        let argv = command.map { strdup($0) } + [nil]
        var pid: pid_t = 0
        let result = posix_spawnp(&pid, command[0], &actions, nil, argv, environ)
        argv.forEach { free($0) }
        posix_spawn_file_actions_destroy(&actions)
        close(toChild[0])
        close(fromChild[1])
        guard result == 0 else { throw EventLoopError.system("posix_spawn(\(command[0]))", Errno(rawValue: result)) }
        self.pid = pid
        input = toChild[1]
        output = fromChild[0]
    }

    /// Blocks until the child prints `line` (the loop is not needed meanwhile).
    public func waitForLine(_ line: String) throws {
        var text = ""
        var byte: UInt8 = 0
        while !text.hasSuffix(line + "\n") {
            guard read(output, &byte, 1) == 1 else { throw EventLoopError.system("read(helper stdout)") }
            text.append(Character(UnicodeScalar(byte)))
        }
    }

    /// Reads the child's output until it closes it.
    public func readAll() -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(output, &buffer, buffer.count)
            if count <= 0 { break }
            bytes += buffer[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Closes the child's stdin (it then exits) and reaps it.
    public func finish() {
        close(input)
        close(output)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}

/// The ping-pong's two sides as methods of an actor whose executor is the
/// loop (no task executor preference: the actor's isolation keeps the code on
/// the loop's thread).
actor LoopActor {
    let executor: LoopExecutor
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    init(_ executor: LoopExecutor) { self.executor = executor }

    func serve(fd: Int32, count: Int) async throws -> Double {
        let socket = AsyncSocket(adopting: SocketDescriptor(FileDescriptor(rawValue: fd)), peer: nil, loop: executor)
        let start = cbench_now()
        try await MicroWorkloads.serve(socket, count: count)
        let elapsed = cbench_now() - start
        socket.close()
        return elapsed
    }

    func echo(fd: Int32) async throws {
        try await MicroWorkloads.echo(AsyncSocket(adopting: SocketDescriptor(FileDescriptor(rawValue: fd)), peer: nil, loop: executor))
    }
}

/// `count` round trips between two tasks isolated to an actor on the loop;
/// with `preferLoop`, the two tasks also have the loop's executor preference
/// (an unstructured `Task {}` has none: it does not inherit its creator's).
public func asyncPingPongOnActor(count: Int, preferLoop: Bool = false) -> Double {
    let loop = try! Loop(backends: .epoll)
    let (a, b) = makeSocketPair()
    return try! loop.run { executor in
        let actor = LoopActor(executor)
        let preference: (any TaskExecutor)? = preferLoop ? executor : nil
        let echoTask = Task(executorPreference: preference) { try await actor.echo(fd: b) }
        let elapsed = try await Task(executorPreference: preference) { try await actor.serve(fd: a, count: count) }.value
        try await echoTask.value
        return elapsed
    }
}

// MARK: cancelled waits

/// `count` tasks awaiting readability - all on one descriptor, or each on a
/// descriptor of its own (duplicates of one socket) - then every one
/// cancelled, in the order they began; returns the seconds from the first
/// cancel to the last wait ended. Issue "Green every time", 4: a watch per
/// wait made this quadratic on one descriptor under libev. A loop that
/// refuses the waits (the epoll loop took one per descriptor) returns NaN.
public func cancelledWaits(count: Int, oneDescriptor: Bool, epoll: Bool) -> Double {
    raiseDescriptorLimit()
    let (a, b) = makeSocketPair()
    let descriptors = oneDescriptor ? Array(repeating: a, count: count) : (0..<count).map { _ in dup(a) }
    defer {
        if !oneDescriptor { descriptors.forEach { _ = close($0) } }
        close(a)
        close(b)
    }
    func body(_ executor: any EventLoopExecutor) async -> Double {
        let tasks = descriptors.map { fd in Task(executorPreference: executor) { try await executor.readable(FileDescriptor(rawValue: fd)) } }
        do { try await executor.sleep(for: .milliseconds(10)) } catch {} // all of them wait now
        let start = cbench_now()
        for task in tasks { task.cancel() }
        var refused = false
        for task in tasks {
            if case .failure(let error) = await task.result, !(error is CancellationError) { refused = true }
        }
        return refused ? .nan : cbench_now() - start
    }
    if epoll {
        return try! EpollLoop().run { await body($0) }
    }
    return try! Loop(backends: .epoll).run { await body($0) }
}
