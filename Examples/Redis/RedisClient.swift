import CHiredis
import EventCore
#if canImport(Glibc)
import Glibc
#endif

/// A connection to Redis on one of the package's loops - libev (`EV.Loop`)
/// or the epoll loop, through the loops' common ``EventCore/EventLoop``
/// protocol: the package's own non-blocking socket and readiness watch,
/// hiredis's reply reader (``RedisReader``) for what comes back.
///
/// It once drove hiredis's asynchronous context through its five event
/// hooks; that context aborts the process (an assertion in async.c) on a
/// reply nobody asked for, and bounds nothing, so a hostile or broken
/// server could end or swell the crawler. Here every byte of the server's
/// is handled by this class: a reply nobody asked for, bytes that are not
/// Redis's protocol or a reply over ``RedisLimits`` end the connection
/// with a ``RedisError/Kind/protocolViolation`` error, never the process.
///
/// An open connection holds its client, as a started watcher holds its
/// closure: it lives until ``close()``, or until the connection fails or the
/// server ends it, whether or not the app keeps a reference.
///
/// Commands are sent with ``send(_:_:)`` (a callback) or ``command(_:)``
/// (`await`). They are pipelined: everything sent in one turn of the loop
/// goes out in one write, and replies come back in order. With a password,
/// `AUTH` goes first (Redis 6's ACL form when a user is given); a refusal
/// ends the connection with ``RedisError/Kind/authentication``. Use a client
/// on its loop's thread only (it is not `Sendable`).
public final class RedisClient<L: EventLoop> {
    /// The loop the client runs on.
    public let loop: L
    /// The server, as `redis://HOST:PORT` (never with credentials).
    public let server: String
    /// Whether the connection is established.
    public private(set) var isConnected = false
    /// Called once when the connection ends: nil after ``close()``, the error
    /// when it could not be made or was lost. Commands waiting for replies
    /// have failed by then.
    public var onClose: ((RedisError?) -> Void)?

    /// How long the server may leave commands unanswered - nothing at all
    /// arriving while replies are due - before the connection is given up
    /// (``RedisError/Kind/timeout``; every waiting command fails with it).
    /// nil, the default, waits as long as the connection lasts.
    public var replyTimeout: Duration? {
        didSet { armWatchdog() }
    }

    private let address: SocketAddress
    private var socket: SocketDescriptor?
    private var watch: L.Watch?
    private let reader: RedisReader
    /// Formatted commands not yet written, from `outputStart`.
    private var output: [UInt8] = []
    private var outputStart = 0
    /// The callbacks of the commands sent, in order, from `first`.
    private var handlers: [(Result<RedisReply, RedisError>) -> Void] = []
    private var first = 0
    private var closing = false
    private var ended = false
    private var connectTimer: (any Cancellable)?
    private var watchdog: (any Cancellable)?
    /// When the last reply came (or the first command of a wait was sent).
    private var lastReply = 0.0

    /// Starts connecting to `host` (an IPv4 or IPv6 address, or a name
    /// resolved here, blocking) at `port`; commands may be sent at once and
    /// go out when the connection is made.
    ///
    /// - Parameters:
    ///   - user: the ACL user (Redis 6 and later); nil for the default user.
    ///   - password: sent with `AUTH` before any command; nil sends none.
    ///   - connectTimeout: how long the connection may take.
    ///   - limits: how big a reply may be.
    /// - Throws: ``RedisError`` (``RedisError/Kind/connect``) when the
    ///   connection cannot even start (the name does not resolve, no
    ///   descriptor left). A refusal or timeout comes later, through
    ///   ``onClose`` and the commands' replies.
    public init(loop: L, host: String, port: UInt16, user: String? = nil, password: String? = nil,
                connectTimeout: Duration = .seconds(10), limits: RedisLimits = RedisLimits()) throws(RedisError) {
        self.loop = loop
        server = "redis://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        reader = RedisReader(limits: limits)
        do {
            address = try SocketAddress(host: host, port: port)
        } catch {
            throw RedisError(.connect, server: server, "\(error)")
        }
        let socket: SocketDescriptor
        do {
            socket = try SocketDescriptor.tcp(address.family)
        } catch {
            throw RedisError(.connect, server: server, error.errno.map { "\($0)" } ?? "\(error)")
        }
        self.socket = socket
        try? socket.setNoDelay()
        let refused: EventLoopError?
        do {
            if case .processed = try socket.connect(to: address) { isConnected = true }
            refused = nil
        } catch {
            refused = error
        }
        if let password {
            send(["AUTH"] + (user.map { [$0] } ?? []) + [password]) { [unowned(unsafe) self] result in
                if case .failure(let error) = result, error.kind == .server || error.kind == .authentication {
                    end(RedisError(.authentication, server: server, "the server refused the credentials: \(error.message)"))
                }
            }
        }
        if let refused {
            // Told through onClose and the commands, as a later refusal is:
            // on the next turn, once the caller has set them.
            _ = loop.schedule(after: .zero) { [self] in end(RedisError(.connect, server: server, refused.errno.map { "\($0)" } ?? "\(refused)")) }
            return
        }
        do {
            // The closure holds the client until the connection ends (then the
            // watch is cancelled): an open connection stays alive, as a started
            // watcher does, whether or not the app keeps a reference.
            watch = try loop.watchReadiness(socket.descriptor, isConnected ? wantedInterest : .write) { [self] ready in handle(ready) }
        } catch {
            socket.close()
            self.socket = nil
            throw RedisError(.connect, server: server, "cannot watch the socket: \(error)")
        }
        if !isConnected {
            connectTimer = loop.schedule(after: connectTimeout) { [weak self] in
                guard let self, !isConnected else { return }
                end(RedisError(.connect, server: server, "no connection after \(connectTimeout)"))
            }
        }
    }

    deinit {
        connectTimer?.cancel()
        watchdog?.cancel()
        watch?.cancel()
        socket?.close()
    }

    // MARK: commands

    /// Sends a command (its name and arguments, each binary safe); `reply`
    /// is called on the loop with the reply, or the error: an error reply
    /// (``RedisError/Kind/server``, or ``RedisError/Kind/authentication``
    /// for `NOAUTH` and `WRONGPASS`), the connection lost before the reply
    /// (``RedisError/Kind/disconnected``, ``RedisError/Kind/connect`` if it
    /// was never made, ``RedisError/Kind/protocolViolation`` if the server
    /// broke the protocol), or the client closed (``RedisError/Kind/closed``).
    public func send(_ arguments: [String], _ reply: @escaping (Result<RedisReply, RedisError>) -> Void) {
        guard !ended, !closing else {
            return reply(.failure(RedisError(.closed, server: server, "command \(arguments.first ?? "") not sent")))
        }
        // Redis's protocol: an array of bulk strings.
        output.append(contentsOf: "*\(arguments.count)\r\n".utf8)
        for argument in arguments {
            var argument = argument
            argument.withUTF8 { bytes in
                output.append(contentsOf: "$\(bytes.count)\r\n".utf8)
                output.append(contentsOf: bytes)
            }
            output.append(13)
            output.append(10)
        }
        if handlers.count == first { lastReply = monotonicNow() }
        handlers.append(reply)
        if isConnected { updateInterest() }
        armWatchdog()
    }

    /// Sends a command and waits for its reply, on the loop: call it from a
    /// task that runs there (the loop's executor is its preference, or an
    /// actor on the loop).
    ///
    /// - Throws: ``RedisError``, as ``send(_:_:)`` reports it.
    public func command(_ arguments: [String]) async throws(RedisError) -> RedisReply {
        let result = await withCheckedContinuation { continuation in
            send(arguments) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Closes the connection once the replies still due have arrived;
    /// commands sent after it fail with ``RedisError/Kind/closed``.
    /// ``onClose`` is called with nil.
    public func close() {
        guard !ended, !closing else { return }
        if !isConnected {
            return end(RedisError(.closed, server: server, "closed before the connection was made"))
        }
        closing = true
        if handlers.count == first { end(nil) }
    }

    // MARK: the socket

    /// Commands waiting for replies.
    private var waiting: Int { handlers.count - first }

    private var wantedInterest: Interest {
        outputStart < output.count ? [.read, .write] : .read
    }

    private func updateInterest() {
        guard let watch, !ended else { return }
        let wanted = wantedInterest
        if watch.interest != wanted { watch.interest = wanted }
    }

    private func handle(_ ready: Interest) {
        guard let socket, !ended else { return }
        if !isConnected {
            guard !ready.isDisjoint(with: [.write, .error]) else { return }
            do {
                try socket.connectResult(to: address)
            } catch {
                return end(RedisError(.connect, server: server, error.errno.map { "\($0)" } ?? "\(error)"))
            }
            isConnected = true
            connectTimer?.cancel()
            connectTimer = nil
            updateInterest()
            if outputStart < output.count { flush() }
            return
        }
        if !ready.isDisjoint(with: [.read, .error]) {
            readAvailable()
        }
        if !ended && !ready.isDisjoint(with: [.write, .error]) {
            flush()
        }
    }

    /// Writes what is queued, as far as the socket takes it.
    private func flush() {
        guard let socket else { return }
        while outputStart < output.count {
            let start = outputStart
            let result = output.withUnsafeBytes { bytes in
                Result { () throws(EventLoopError) in try socket.write(UnsafeRawBufferPointer(rebasing: bytes[start...])) }
            }
            guard case .success(let written) = result else {
                if case .failure(let error) = result { end(RedisError(.disconnected, server: server, "\(error)")) }
                return
            }
            guard case .processed(let count) = written else { break }
            outputStart += count
        }
        if outputStart == output.count {
            output.removeAll(keepingCapacity: output.count <= 64 * 1024)
            outputStart = 0
        }
        updateInterest()
    }

    /// Reads what has arrived, hands it to the reader, delivers the replies.
    private func readAvailable() {
        guard let socket else { return }
        withUnsafeTemporaryAllocation(byteCount: 64 * 1024, alignment: 16) { buffer in
            // A bounded number of reads per readiness event: a server that
            // never stops sending cannot hold the loop.
            for _ in 0..<4 {
                let count: Int
                do throws(EventLoopError) {
                    guard case .processed(let read) = try socket.read(into: buffer) else { return }
                    count = read
                } catch {
                    return end(RedisError(.disconnected, server: server, "\(error)"))
                }
                if count == 0 {
                    return end(closing && waiting == 0 ? nil : RedisError(.disconnected, server: server, "the server closed the connection"))
                }
                reader.feed(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
                deliverReplies()
                if ended || count < buffer.count { return }
            }
        }
    }

    private func deliverReplies() {
        while !ended, let reply = reader.next() {
            guard first < handlers.count else {
                return end(RedisError(.protocolViolation, server: server,
                                      "a reply nobody asked for: \(String(reply.description.prefix(120)))"))
            }
            let handler = handlers[first]
            handlers[first] = { _ in }
            first += 1
            if first > 1024 && first * 2 > handlers.count {
                handlers.removeFirst(first)
                first = 0
            }
            lastReply = monotonicNow()
            handler(result(of: reply))
            if closing && waiting == 0 { return end(nil) }
        }
        if !ended, let failure = reader.failure {
            end(RedisError(.protocolViolation, server: server, failure))
        }
    }

    /// A reply as its command's result: an error reply is a failure.
    private func result(of reply: RedisReply) -> Result<RedisReply, RedisError> {
        guard case .error(let message) = reply else { return .success(reply) }
        // Redis 7 refuses a long command from a client that has not
        // authenticated before it would say NOAUTH ("ERR Protocol error:
        // unauthenticated multibulk length"): the same want of a password.
        if message.hasPrefix("NOAUTH") || message.hasPrefix("WRONGPASS") || message.contains("unauthenticated") {
            return .failure(RedisError(.authentication, server: server, message))
        }
        return .failure(RedisError(.server, server: server, message))
    }

    // MARK: the end

    /// Ends the connection, once: the watch and the socket go, every command
    /// still waiting fails with `error` (or ``RedisError/Kind/closed``), then
    /// ``onClose`` is told.
    private func end(_ error: RedisError?) {
        guard !ended else { return }
        ended = true
        isConnected = false
        connectTimer?.cancel()
        connectTimer = nil
        watchdog?.cancel()
        watchdog = nil
        watch?.cancel()
        watch = nil
        socket?.close()
        socket = nil
        output = []
        outputStart = 0
        let pending = handlers[first...]
        handlers = []
        first = 0
        let failure = error ?? RedisError(.closed, server: server, "the connection was closed")
        for handler in pending { handler(.failure(failure)) }
        let callback = onClose
        onClose = nil
        callback?(error)
    }

    /// Watches for replies while some are due: when nothing has come for
    /// ``replyTimeout``, the connection is given up.
    private func armWatchdog() {
        guard let replyTimeout = replyTimeout.map(LoopTime.delay), watchdog == nil, waiting > 0, !ended else { return }
        let due = lastReply + replyTimeout - monotonicNow()
        watchdog = loop.schedule(after: LoopTime.duration(max(due, 0.001))) { [weak self] in
            guard let self else { return }
            watchdog = nil
            guard waiting > 0, !ended else { return }
            if monotonicNow() - lastReply >= replyTimeout {
                // A loop held up (a busy machine, a long callback) may have
                // replies waiting unread, and a loop may run this timer before
                // the descriptor's callback: read them before giving up.
                readAvailable()
                guard waiting > 0, !ended else { return }
            }
            if monotonicNow() - lastReply >= replyTimeout {
                end(RedisError(.timeout, server: server, "no reply within \(LoopTime.describe(LoopTime.duration(replyTimeout)))"))
            } else {
                armWatchdog()
            }
        }
    }
}
