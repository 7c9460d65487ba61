import CHiredis
import EventCore
import Resolver
import TLS
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
public final class RedisClient<L: EventLoop>: ConnectionDelegate {
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

    /// The lookup of the server's name, while it lasts.
    private var resolver: NameResolver<L>?
    private var lookup: NameLookup?
    /// The name's addresses not tried yet: a refused or timed-out
    /// connection tries the next one, as `AsyncSocket.connect(toHost:)` does.
    private var untried: ArraySlice<SocketAddress> = []
    /// The connection, until it ends (it holds this client meanwhile, as
    /// its delegate: an open connection stays alive, as a started watcher
    /// does, whether or not the app keeps a reference).
    private var connection: Connection<L>?
    private let reader: RedisReader
    /// Formatted commands not yet handed to the connection: a turn's
    /// commands go out in one write.
    private var pending: [UInt8] = []
    private var flushScheduled = false
    /// The callbacks of the commands sent, in order, from `first`.
    private var handlers: [(Result<RedisReply, RedisError>) -> Void] = []
    private var first = 0
    private var closing = false
    private var ended = false
    private var watchdog: (any Cancellable)?
    /// When the last reply came (or the first command of a wait was sent).
    private var lastReply = 0.0
    private let connectTimeout: Duration
    /// TLS's, for `rediss://`.
    private let layer: StreamLayerFactory?

    /// Starts connecting to `host` (an IPv4 or IPv6 address, or a name
    /// looked up on the loop with a ``Resolver/NameResolver``) at `port`;
    /// commands may be sent at once and go out when the connection is made.
    ///
    /// - Parameters:
    ///   - user: the ACL user (Redis 6 and later); nil for the default user.
    ///   - password: sent with `AUTH` before any command; nil sends none.
    ///   - connectTimeout: how long the connection may take.
    ///   - limits: how big a reply may be.
    ///   - resolverOptions: how a name is looked up (the DNS servers).
    ///   - tls: speak TLS with this client context (`rediss://`: Redis 6's
    ///     `tls-port`), checking the certificate against `host`; nil: plain TCP.
    /// - Throws: ``RedisError`` (``RedisError/Kind/connect``) when the
    ///   connection cannot even start (no descriptor left). A name that does
    ///   not resolve, a refusal or a timeout comes later, through ``onClose``
    ///   and the commands' replies.
    public init(loop: L, host: String, port: UInt16, user: String? = nil, password: String? = nil,
                connectTimeout: Duration = .seconds(10), limits: RedisLimits = RedisLimits(),
                resolverOptions: ResolverOptions = ResolverOptions(), tls: TLSContext? = nil) throws(RedisError) {
        self.loop = loop
        server = "redis\(tls == nil ? "" : "s")://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        layer = tls?.clientLayer(serverName: host, port: port)
        reader = RedisReader(limits: limits)
        self.connectTimeout = connectTimeout
        if let password {
            send(["AUTH"] + (user.map { [$0] } ?? []) + [password]) { [unowned(unsafe) self] result in
                if case .failure(let error) = result, error.kind == .server || error.kind == .authentication {
                    end(RedisError(.authentication, server: server, "the server refused the credentials: \(error.message)"))
                }
            }
        }
        if let address = numericAddress(host, port: port) {
            try connect(to: address)
            return
        }
        // A name: looked up on the loop. The lookup holds this client until
        // it answers, as the connection does once made.
        do {
            let resolver = try NameResolver(on: loop, options: resolverOptions)
            self.resolver = resolver
            lookup = resolver.resolve(host, port: port) { result in
                self.lookup = nil
                self.resolver?.close()
                self.resolver = nil
                do {
                    let addresses = try result.get()
                    self.untried = addresses.dropFirst()
                    try self.connect(to: addresses[0])
                } catch let error as RedisError {
                    self.end(error)
                } catch {
                    self.end(RedisError(.connect, server: self.server, "\(error)"))
                }
            }
        } catch {
            throw RedisError(.connect, server: server, "\(error)")
        }
    }

    private func connect(to address: SocketAddress) throws(RedisError) {
        do {
            // A refusal or a timeout comes later, through connectionClosed:
            // on a later turn, once the caller has set onClose.
            connection = try Connection.connect(to: address, on: loop, timeout: connectTimeout, layer: layer, delegate: self)
        } catch {
            throw RedisError(.connect, server: server, error.errno.map { "\($0)" } ?? "\(error)")
        }
    }

    deinit {
        watchdog?.cancel()
        connection?.close()
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
        pending.append(contentsOf: "*\(arguments.count)\r\n".utf8)
        for argument in arguments {
            var argument = argument
            argument.withUTF8 { bytes in
                pending.append(contentsOf: "$\(bytes.count)\r\n".utf8)
                pending.append(contentsOf: bytes)
            }
            pending.append(13)
            pending.append(10)
        }
        if handlers.count == first { lastReply = monotonicNow() }
        handlers.append(reply)
        if !flushScheduled {
            flushScheduled = true
            _ = loop.schedule(after: .zero) { [weak self] in self?.flushPending() }
        }
        armWatchdog()
    }

    /// Sends a command and waits for its reply, on the loop: call it from a
    /// task that runs there (the loop's executor is its preference, or an
    /// actor on the loop).
    ///
    /// - Throws: ``RedisError``, as ``send(_:_:)`` reports it.
    ///
    /// `withTimeout` and cancellation end the wait (throwing
    /// `EventLoopError.timedOut` or `CancellationError`); the command has been
    /// sent, and its reply, when it comes, is dropped - as with asyncio's
    /// `wait_for` around a redis-py call.
    nonisolated(nonsending) public func command(_ arguments: [String]) async throws -> RedisReply {
        guard let core = loop.executor as? LoopExecutorCore<L> else {
            preconditionFailure("RedisClient: the loop's executor is not the package's")
        }
        return try await core.suspend { (suspension: Suspension<RedisReply, L>, _) in
            self.send(arguments) { result in suspension.finish(result.mapError { $0 }) }
        }
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

    // MARK: the connection

    /// Commands waiting for replies.
    private var waiting: Int { handlers.count - first }

    /// Hands the turn's commands to the connection, in one write.
    private func flushPending() {
        flushScheduled = false
        // Until the connection is made the commands wait here, not in its
        // queue: a connection that fails takes nothing with it when the
        // next address is tried.
        guard !ended, isConnected, !pending.isEmpty, let connection else { return }
        connection.write(pending)
        pending.removeAll(keepingCapacity: pending.count <= 64 * 1024)
    }

    /// The connection is made (``EventCore/ConnectionDelegate``; not for apps).
    public func connectionEstablished() {
        isConnected = true
        untried = []
        flushPending()
    }

    /// Replies arrived (``EventCore/ConnectionDelegate``; not for apps).
    public func connectionReceived(_ bytes: UnsafeRawBufferPointer) {
        reader.feed(bytes)
        deliverReplies()
    }

    /// The server closed its side (``EventCore/ConnectionDelegate``; not for apps).
    public func connectionReachedEnd() -> Bool {
        end(closing && waiting == 0 ? nil : RedisError(.disconnected, server: server, "the server closed the connection"))
        return false
    }

    /// The connection ended (``EventCore/ConnectionDelegate``; not for apps).
    public func connectionClosed(_ error: EventLoopError?) {
        connection = nil
        guard let error else { return } // closed by end(_:)
        if !isConnected, !ended, let next = untried.popFirst() {
            do {
                return try connect(to: next)
            } catch {
                return end(error)
            }
        }
        if !isConnected {
            let reason = error.code == .timedOut ? "no connection after \(LoopTime.describe(connectTimeout))" : error.errno.map { "\($0)" } ?? "\(error)"
            end(RedisError(.connect, server: server, reason))
        } else {
            end(RedisError(.disconnected, server: server, error.errno.map { "\($0)" } ?? "\(error)"))
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
        watchdog?.cancel()
        watchdog = nil
        lookup?.cancel()
        lookup = nil
        resolver?.close()
        resolver = nil
        connection?.close()
        connection = nil
        pending = []
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
                connection?.readNow()
                guard waiting > 0, !ended else { return }
            }
            if monotonicNow() - lastReply >= replyTimeout {
                end(RedisError(.timeout, server: server, "no reply within \(LoopTime.describe(self.replyTimeout ?? .zero))"))
            } else {
                armWatchdog()
            }
        }
    }
}
