#if canImport(Glibc)
import Glibc
#endif
import CLinux

/// How a child process changed, decoded from `waitpid`'s status.
public enum ChildStatus: Equatable, Sendable, CustomStringConvertible {
    /// It called `exit(code)`.
    case exited(code: Int32)
    /// A signal killed it.
    case signaled(signal: Int32, coreDumped: Bool)
    /// A signal stopped it (reported only with `trace`).
    case stopped(signal: Int32)
    /// It continued after a stop (reported only with `trace`).
    case continued

    /// Decodes a raw `waitpid` status.
    public init(waitStatus status: Int32) {
        let low = status & 0x7f
        if low == 0 {
            self = .exited(code: (status >> 8) & 0xff)
        } else if status == 0xffff {
            self = .continued
        } else if (status & 0xff) == 0x7f {
            self = .stopped(signal: (status >> 8) & 0xff)
        } else {
            self = .signaled(signal: low, coreDumped: status & 0x80 != 0)
        }
    }

    /// `"exited with code 3"`, `"killed by signal 9"`.
    public var description: String {
        switch self {
        case .exited(let code): "exited with code \(code)"
        case .signaled(let signal, let core): "killed by signal \(signal)\(core ? " (core dumped)" : "")"
        case .stopped(let signal): "stopped by signal \(signal)"
        case .continued: "continued"
        }
    }
}


extension EventLoop {
    /// Calls `callback` once, on the loop, when the child `pid` has exited,
    /// and reaps it: through a `pidfd` (Linux 5.3) watched for readability
    /// and `waitid(P_PIDFD)` - the epoll loop's way, and a libev loop's
    /// other than the default one. (libev's default loop reaps every child
    /// itself on `SIGCHLD`; `EV.Loop` answers with its child watcher there.)
    ///
    /// If libev's default loop runs in the process, it reaps every child on
    /// `SIGCHLD`, this one too: the callback then gets `ECHILD` ("reaped by
    /// another waiter") instead of the status.
    ///
    /// - Returns: the watch; cancelling it stops watching (the child is then
    ///   not reaped by the loop).
    /// - Throws: ``EventLoopError`` if `pidfd_open` fails (`ESRCH`: no such
    ///   process; it must be a child of this process, not yet reaped).
    public func watchChildExitWithPidfd(_ pid: pid_t, _ callback: @escaping (Result<ChildStatus, EventLoopError>) -> Void)
        throws(EventLoopError) -> any Cancellable {
        let pidfd = CLinux_pidfd_open(pid)
        guard pidfd >= 0 else { throw EventLoopError.system("pidfd_open(\(pid))") }
        let watch = PidfdWatch(pidfd: pidfd, pid: pid, callback: callback)
        do {
            // The watch holds the PidfdWatch (a cycle that cancel() breaks): a child
            // its app forgot is still reaped.
            watch.watch = try watchReadiness(FileDescriptor(rawValue: pidfd), .read) { _ in watch.ready() }
        } catch {
            Glibc.close(pidfd)
            throw error
        }
        return watch
    }
}

/// A pidfd watched for the child's exit: the watch holds it (a started watch
/// stays alive), so a child its app forgot is still reaped.
private final class PidfdWatch: Cancellable {
    private var pidfd: Int32
    private let pid: pid_t
    private var callback: ((Result<ChildStatus, EventLoopError>) -> Void)?
    var watch: (any IOWatching)?

    init(pidfd: Int32, pid: pid_t, callback: @escaping (Result<ChildStatus, EventLoopError>) -> Void) {
        self.pidfd = pidfd
        self.pid = pid
        self.callback = callback
    }

    func ready() {
        var code: Int32 = 0
        var status: Int32 = 0
        let reaped = CLinux_reap_pidfd(pidfd, &code, &status)
        if reaped == 0 { return } // not yet: woken early
        let result: Result<ChildStatus, EventLoopError>
        if reaped < 0 {
            // ECHILD: reaped by another waiter (libev's default loop reaps
            // every child on SIGCHLD, whichever loop started it).
            result = .failure(EventLoopError.system("waitid(pidfd of \(pid))"))
        } else if code == CLinux_CLD_EXITED {
            result = .success(.exited(code: status))
        } else {
            result = .success(.signaled(signal: status, coreDumped: code == CLinux_CLD_DUMPED))
        }
        let callback = self.callback
        cancel()
        callback?(result)
    }

    func cancel() {
        callback = nil
        watch?.cancel()
        watch = nil
        if pidfd >= 0 {
            close(pidfd)
            pidfd = -1
        }
    }
}

/// A program running as a child process, on a loop: its exit awaited there,
/// its standard streams the package's sockets (asyncio's
/// `create_subprocess_exec`, gevent's `subprocess`).
///
/// ```swift
/// let child = try ChildProcess.spawn("sort", standardInput: .stream, standardOutput: .stream, on: loop)
/// try await child.standardInput!.write(Array("b\na\n".utf8))
/// try child.standardInput!.shutdownWrite()        // sort sees the end of its input
/// let sorted = try await BufferedReader(child.standardOutput!).readLine()   // "a"
/// let status = try await child.exitStatus()       // .exited(code: 0)
/// ```
///
/// A ``Stdio/stream`` is one end of a Unix socket pair (libuv's way for a
/// child's stdio), the other end the child's descriptor 0, 1 or 2: an
/// ``AsyncSocket`` on the loop, so ``BufferedReader``, `withTimeout` and
/// ``AsyncSocket/shutdownWrite()`` (the child's end of input) work on it as on
/// a connection.
///
/// The child is reaped on the loop when it exits, whether or not anyone
/// waits: an app that forgets the process leaves no zombie (while the loop
/// runs), and closing the streams leaves no descriptor. On libev's default
/// loop the exit comes through libev's child watcher (that loop reaps every
/// child); elsewhere through a `pidfd`.
///
/// The child gets its three standard streams and no other descriptor of
/// this process: every one from 3 up is closed in the child, close-on-exec
/// or not (Python's `close_fds=True`, swift-subprocess's default), so a
/// connection or listener the app closes is not held open by a child.
///
/// A child process belongs to its loop's thread: spawn it, wait for it and
/// use its streams there.
public final class ChildProcess {
    /// What a standard stream of the child is.
    public enum Stdio: Sendable {
        /// This process's own (the default, as asyncio's `None`).
        case inherit
        /// `/dev/null`.
        case null
        /// A socket pair: the child's end is its descriptor, this process's end an ``AsyncSocket``.
        case stream
        /// This descriptor (the caller keeps and closes it).
        case descriptor(FileDescriptor)
    }

    /// The child's process id.
    public let pid: pid_t
    /// The child's standard input, when it is a ``Stdio/stream``: write to
    /// it; ``AsyncSocket/shutdownWrite()`` ends the child's input.
    public let standardInput: AsyncSocket?
    /// The child's standard output, when it is a ``Stdio/stream``.
    public let standardOutput: AsyncSocket?
    /// The child's standard error, when it is a ``Stdio/stream``.
    public let standardError: AsyncSocket?
    /// How it ended, once it has (and been reaped); nil while it runs.
    public var status: ChildStatus? { exit.status }
    /// The exit, shared with the loop's watch: callbacks given to
    /// ``whenExited(_:)`` run even if the app drops this object.
    private let exit: ChildExit
    private let suspendUntilExit: (ChildExit) async throws -> ChildStatus

    /// Starts `program` with `arguments`, on `loop`.
    ///
    /// - Parameters:
    ///   - program: a path, or a name looked up in `PATH` (`posix_spawnp`).
    ///   - arguments: its arguments (its `argv[0]` is `program`).
    ///   - environment: the child's whole environment; nil passes this process's.
    ///   - standardInput: what the child reads (``Stdio/inherit`` by default).
    ///   - standardOutput: where the child writes.
    ///   - standardError: where the child writes its errors.
    ///   - loop: the loop that awaits its exit and its streams; call on its thread.
    /// - Throws: ``EventLoopError``: `posix_spawn(PROGRAM)` failed (`ENOENT`,
    ///   `EACCES`), or no descriptor was left for a stream.
    public static func spawn<L: EventLoop>(_ program: String, _ arguments: [String] = [], environment: [String: String]? = nil,
                                           standardInput: Stdio = .inherit, standardOutput: Stdio = .inherit,
                                           standardError: Stdio = .inherit, on loop: L) throws(EventLoopError) -> ChildProcess {
        var ours: [Int32?] = [nil, nil, nil]
        var theirs: [Int32] = []
        var nullDescriptor: Int32 = -1
        func closeAll() {
            for fd in ours.compactMap({ $0 }) + theirs { Glibc.close(fd) }
            if nullDescriptor >= 0 { Glibc.close(nullDescriptor) }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (target, stdio) in [standardInput, standardOutput, standardError].enumerated() {
            switch stdio {
            case .inherit:
                break
            case .null:
                if nullDescriptor < 0 {
                    nullDescriptor = open("/dev/null", O_RDWR | CLinux_O_CLOEXEC)
                    guard nullDescriptor >= 0 else {
                        let error = EventLoopError.system("open(/dev/null)")
                        closeAll()
                        throw error
                    }
                }
                posix_spawn_file_actions_adddup2(&actions, nullDescriptor, Int32(target))
            case .stream:
                var pair: [Int32] = [-1, -1]
                guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | CLinux_SOCK_CLOEXEC, 0, &pair) == 0 else {
                    let error = EventLoopError.system("socketpair")
                    closeAll()
                    throw error
                }
                ours[target] = pair[0]
                theirs.append(pair[1])
                _ = fcntl(pair[0], F_SETFL, fcntl(pair[0], F_GETFL) | O_NONBLOCK)
                posix_spawn_file_actions_adddup2(&actions, pair[1], Int32(target))
            case .descriptor(let descriptor):
                posix_spawn_file_actions_adddup2(&actions, descriptor.rawValue, Int32(target))
            }
        }
        // Then every other descriptor closes in the child (Python's
        // close_fds=True): one the app made without close-on-exec would
        // otherwise live on in the child, holding a connection or a
        // listener open after the app closed it.
        let closing = CLinux_spawn_addclosefrom(&actions, 3)
        guard closing == 0 else {
            closeAll()
            throw EventLoopError.system("posix_spawn_file_actions_addclosefrom_np", Errno(rawValue: closing))
        }
        var attributes = ChildSpawnAttributes()
        defer { attributes.destroy() }
        let argv = ([program] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let result: Int32
        if let environment {
            let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer { envp.forEach { free($0) } }
            result = posix_spawnp(&pid, program, &actions, &attributes.value, argv, envp)
        } else {
            result = posix_spawnp(&pid, program, &actions, &attributes.value, argv, environ)
        }
        for fd in theirs { Glibc.close(fd) }
        theirs = []
        if nullDescriptor >= 0 {
            Glibc.close(nullDescriptor)
            nullDescriptor = -1
        }
        guard result == 0 else {
            closeAll()
            throw EventLoopError.system("posix_spawn(\(program))", Errno(rawValue: result))
        }
        let streams = ours.map { fd in fd.map { AsyncSocket(adopting: SocketDescriptor($0), peer: nil, loop: loop.executor) } }
        let exit = ChildExit()
        let child = ChildProcess(pid: pid, exit: exit, streams: streams) { exit in
            guard let core = loop.executor as? LoopExecutorCore<L> else {
                preconditionFailure("ChildProcess: the loop's executor is not the package's")
            }
            return try await core.suspend { (suspension: Suspension<ChildStatus, L>, _) in
                exit.whenExited { suspension.finish($0.mapError { $0 }) }
            }
        }
        do {
            // At once, on this thread: on libev's default loop the child
            // watcher must be started before the loop can reap the child.
            _ = try loop.watchChildExit(pid) { result in exit.exited(result) }
        } catch {
            // No way to learn its exit: end it rather than leave a zombie.
            Glibc.kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            child.closeStreams()
            throw error
        }
        return child
    }

    private init(pid: pid_t, exit: ChildExit, streams: [AsyncSocket?],
                 suspendUntilExit: @escaping (ChildExit) async throws -> ChildStatus) {
        self.pid = pid
        self.exit = exit
        standardInput = streams[0]
        standardOutput = streams[1]
        standardError = streams[2]
        self.suspendUntilExit = suspendUntilExit
    }

    /// Calls `callback` on the loop once the child has exited (at once, if
    /// it has): the callback form of ``exitStatus()``.
    public func whenExited(_ callback: @escaping (Result<ChildStatus, EventLoopError>) -> Void) {
        exit.whenExited(callback)
    }

    /// Waits for the child to exit and returns how it ended. Call it from a
    /// task on the loop it was spawned on.
    ///
    /// `withTimeout` and cancellation end the wait, not the child: it runs
    /// on, and is still reaped when it exits (``terminate()`` or ``kill(_:)`` it first).
    ///
    /// - Throws: ``EventLoopError`` (``EventLoopError/Code/timedOut`` at the
    ///   task's deadline; `ECHILD` if another waiter reaped it), `CancellationError`.
    nonisolated(nonsending) public func exitStatus() async throws -> ChildStatus {
        if let status { return status }
        return try await suspendUntilExit(exit)
    }

    /// Sends `SIGTERM`: asks the child to end. Harmless once it has exited.
    public func terminate() { send(SIGTERM) }

    /// Sends `signal` (`SIGKILL` by default) to the child, while it has not
    /// been reaped (after, its pid may be another process's: nothing is sent).
    public func kill(_ signal: Int32 = SIGKILL) { send(signal) }

    private func send(_ signal: Int32) {
        guard !exit.isOver else { return }
        _ = Glibc.kill(pid, signal)
    }

    /// Closes this process's ends of the streams (the child sees the end of
    /// its input, and a write to a closed output fails with `EPIPE`).
    public func closeStreams() {
        standardInput?.close()
        standardOutput?.close()
        standardError?.close()
    }

}

/// `posix_spawn` attributes that start a child with default signal handling
/// and an empty signal mask, whatever this process set (the loops block the
/// signals they read from a signalfd, and ignore SIGPIPE): the one setting
/// of every spawn of the package and its tests.
package struct ChildSpawnAttributes {
    package var value = posix_spawnattr_t()

    package init() {
        posix_spawnattr_init(&value)
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&value, &all)
        posix_spawnattr_setsigmask(&value, &none)
        posix_spawnattr_setflags(&value, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
    }

    package mutating func destroy() { posix_spawnattr_destroy(&value) }
}

/// How a child ended, and who waits to know: held by the loop's exit watch
/// until the child is reaped.
private final class ChildExit {
    var status: ChildStatus?
    /// Why its exit could not be known, if so (another waiter reaped it).
    var failure: EventLoopError?
    private var callbacks: [(Result<ChildStatus, EventLoopError>) -> Void] = []

    var isOver: Bool { status != nil || failure != nil }

    func whenExited(_ callback: @escaping (Result<ChildStatus, EventLoopError>) -> Void) {
        if let status { return callback(.success(status)) }
        if let failure { return callback(.failure(failure)) }
        callbacks.append(callback)
    }

    func exited(_ result: Result<ChildStatus, EventLoopError>) {
        switch result {
        case .success(let status): self.status = status
        case .failure(let error): failure = error
        }
        let waiting = callbacks
        callbacks = []
        for callback in waiting { callback(result) }
    }
}
