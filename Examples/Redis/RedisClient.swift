import CHiredis
import EventCore
#if canImport(Glibc)
import Glibc
#endif

/// A connection to Redis through hiredis's asynchronous API, on one of the
/// package's loops: libev (`EV.Loop`) or the epoll loop, through the loops'
/// common ``EventCore/EventLoop`` protocol.
///
/// hiredis attaches to an event loop through five hooks - add and remove
/// read, add and remove write, clean up - the interface its own adapters
/// (`hiredis/adapters/libev.h`, `libuv.h`, ...) implement. This class
/// implements them once, over one readiness watch of the loop: the hooks
/// change the watch's interest; readiness calls `redisAsyncHandleRead` and
/// `redisAsyncHandleWrite`. On libev it behaves as `adapters/libev.h` does
/// (which starts and stops two `ev_io` watchers on the same descriptor);
/// this one is used because it runs on either loop and its watch is the
/// loop's own (closing the loop cancels it, and it is checked for the loop's
/// thread like every other).
///
/// An open connection holds its client, as a started watcher holds its
/// closure: it lives until ``close()``, or until the connection fails or the
/// server ends it, whether or not the app keeps a reference. Close it before
/// closing its loop: closing the loop cancels the client's watch, but only
/// the client can free hiredis's context (and its descriptor).
///
/// Commands are sent with ``send(_:_:)`` (a callback) or ``command(_:)``
/// (`await`). hiredis pipelines them: everything sent in one turn of the loop
/// goes out in one write, and replies come back in order. Use a client on its
/// loop's thread only (it is not `Sendable`).
public final class RedisClient<L: EventLoop> {
    /// The loop the client runs on.
    public let loop: L
    private let connection: HiredisConnection
    private var watch: L.Watch?

    /// The server, as `redis://HOST:PORT`.
    public var server: String { connection.server }
    /// Whether the connection is established (the first write readiness came).
    public var isConnected: Bool { connection.isConnected }
    /// Called once when the connection ends: nil after ``close()``, the error
    /// when it could not be made or was lost. Commands waiting for replies
    /// have failed by then.
    public var onClose: ((RedisError?) -> Void)? {
        get { connection.onClose }
        set { connection.onClose = newValue }
    }

    /// Seconds the server may leave commands unanswered - nothing at all
    /// arriving while replies are due - before the connection is given up
    /// (``RedisError/Kind/timeout``; every waiting command fails with it).
    /// nil, the default, waits as long as the connection lasts, as hiredis does.
    public var replyTimeout: Double? {
        get { connection.replyTimeout }
        set { connection.replyTimeout = newValue }
    }

    /// Starts connecting to `host` (an IPv4 or IPv6 address, or a name
    /// resolved here, blocking) at `port`; commands may be sent at once and
    /// go out when the connection is made.
    ///
    /// - Throws: ``RedisError`` (``RedisError/Kind/connect``) when hiredis
    ///   cannot even start (the name does not resolve, no descriptor left).
    ///   A refusal or timeout comes later, through ``onClose`` and the
    ///   commands' replies.
    public convenience init(loop: L, host: String, port: UInt16, connectTimeout: Double = 10) throws(RedisError) {
        try self.init(loop: loop, host: host, port: port, connectTimeout: connectTimeout, attach: nil)
    }

    /// With `attach`, hiredis's hooks are set by that function instead (the
    /// tests pass hiredis's own `redisLibevAttach`, to compare the two).
    package init(loop: L, host: String, port: UInt16, connectTimeout: Double = 10,
                 attach: ((UnsafeMutablePointer<redisAsyncContext>) -> Int32)?) throws(RedisError) {
        self.loop = loop
        connection = try HiredisConnection(host: host, port: port, attach: attach)
        let connection = self.connection
        connection.after = { seconds, work in loop.schedule(after: seconds, work) }
        // The closure holds the client until the connection ends (then the
        // connection lets go of it): an open connection stays alive, as a
        // started watcher does, whether or not the app keeps a reference.
        connection.watch = { [self] fd, interest in
            if interest.isEmpty {
                watch?.cancel()
                watch = nil
            } else if let watch {
                watch.interest = interest
            } else {
                watch = try loop.watchReadiness(fd, interest) { [unowned connection] ready in connection.handle(ready) }
            }
        }
        connection.start(connectTimeout: connectTimeout)
    }

    deinit {
        watch?.cancel()
        connection.free()
    }

    /// Sends a command (its name and arguments, each binary safe); `reply`
    /// is called on the loop with the reply, or the error: an error reply
    /// (``RedisError/Kind/server``), the connection lost before the reply
    /// (``RedisError/Kind/disconnected``, or ``RedisError/Kind/connect`` if it
    /// was never made), or the client closed (``RedisError/Kind/closed``).
    public func send(_ arguments: [String], _ reply: @escaping (Result<RedisReply, RedisError>) -> Void) {
        connection.send(arguments, reply)
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

    /// Closes the connection once the replies still due have arrived
    /// (`redisAsyncDisconnect`); commands sent after it fail with
    /// ``RedisError/Kind/closed``. ``onClose`` is called with nil.
    public func close() {
        connection.close()
    }
}

/// hiredis's asynchronous context and its five event hooks, apart from the
/// loop's type: C function pointers cannot capture a generic parameter, so
/// the hooks reach the loop through `watch` and `after`, which
/// ``RedisClient`` sets.
final class HiredisConnection {
    let server: String
    /// hiredis's context; nil once hiredis freed it (closed, refused, lost).
    private var context: UnsafeMutablePointer<redisAsyncContext>?
    private var interest: Interest = []
    private var ended = false
    /// Whether the event hooks are this class's (not a foreign adapter's).
    private let ownsHooks: Bool
    private(set) var endError: RedisError?
    private var connectTimer: (any Cancellable)?
    private(set) var isConnected = false
    var onClose: ((RedisError?) -> Void)?
    /// Sets what the loop watches the descriptor for (empty: nothing).
    var watch: (Int32, Interest) throws -> Void = { _, _ in }
    /// Runs work on the loop after some seconds (0: on its next turn).
    var after: (Double, @escaping () -> Void) -> (any Cancellable)? = { _, _ in nil }
    var replyTimeout: Double?
    /// Commands sent whose replies have not come.
    private var waiting = 0
    /// When the last reply came (or the first command of a wait was sent).
    private var lastReply = 0.0
    private var watchdog: (any Cancellable)?

    init(host: String, port: UInt16, attach: ((UnsafeMutablePointer<redisAsyncContext>) -> Int32)?) throws(RedisError) {
        server = "redis://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        ownsHooks = attach == nil
        guard let context = redisAsyncConnect(host, Int32(port)) else {
            throw RedisError(.connect, server: server, "hiredis could not allocate a context")
        }
        if context.pointee.err != 0 {
            let message = String(cString: context.pointee.errstr)
            redisAsyncFree(context)
            throw RedisError(.connect, server: server, message)
        }
        self.context = context
        let me = Unmanaged.passUnretained(self).toOpaque()
        context.pointee.data = me
        if let attach {
            guard attach(context) == REDIS_OK else {
                redisAsyncFree(context)
                throw RedisError(.connect, server: server, "the event library adapter would not attach")
            }
        } else {
            context.pointee.ev.data = me
            context.pointee.ev.addRead = { HiredisConnection.connection($0).change(insert: .read) }
            context.pointee.ev.delRead = { HiredisConnection.connection($0).change(remove: .read) }
            context.pointee.ev.addWrite = { HiredisConnection.connection($0).change(insert: .write) }
            context.pointee.ev.delWrite = { HiredisConnection.connection($0).change(remove: .write) }
            context.pointee.ev.cleanup = { HiredisConnection.connection($0).released() }
        }
    }

    /// Starts connecting, once ``watch`` and ``after`` are set (setting the
    /// connect callback asks for the first write readiness); gives up after
    /// `connectTimeout` seconds without a connection.
    func start(connectTimeout: Double) {
        guard let context else { return }
        connectTimer = after(connectTimeout) { [weak self] in self?.timedOut(after: connectTimeout) }
        redisAsyncSetDisconnectCallback(context) { context, status in
            guard let context, let data = context.pointee.data else { return }
            let connection = HiredisConnection.connection(data)
            connection.released()
            connection.end(status == REDIS_OK ? nil : RedisError(.disconnected, server: connection.server, HiredisConnection.errorText(context)))
        }
        redisAsyncSetConnectCallback(context) { context, status in
            guard let context, let data = context.pointee.data else { return }
            let connection = HiredisConnection.connection(data)
            connection.connectTimer?.cancel()
            connection.connectTimer = nil
            if status == REDIS_OK {
                connection.isConnected = true
            } else {
                // hiredis frees the context after this returns (each waiting
                // command fails, then the hooks' cleanup).
                connection.endError = RedisError(.connect, server: connection.server, HiredisConnection.errorText(context))
                connection.released()
            }
        }
    }

    /// Frees the context now (the client is going away): hiredis must not
    /// call back into it, so the hooks go first; the commands still waiting
    /// fail (their callbacks are their own).
    func free() {
        connectTimer?.cancel()
        watchdog?.cancel()
        guard let context else { return }
        self.context = nil
        context.pointee.data = nil
        // A foreign adapter's hooks stay: they touch only their own state,
        // and its cleanup must stop its watchers.
        if ownsHooks { context.pointee.ev = .init() }
        redisAsyncFree(context)
    }

    private static func connection(_ data: UnsafeMutableRawPointer?) -> HiredisConnection {
        Unmanaged<HiredisConnection>.fromOpaque(data!).takeUnretainedValue()
    }

    /// hiredis's words for the connection's error: the context's own (the
    /// asynchronous context copies it only when it disconnects).
    static func errorText(_ context: UnsafePointer<redisAsyncContext>, or fallback: String = "connection closed") -> String {
        var errorText = context.pointee.c.errstr
        let text = withUnsafeBytes(of: &errorText) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        return text.isEmpty ? fallback : text
    }

    // MARK: hiredis's event hooks

    private func change(insert: Interest = [], remove: Interest = []) {
        var wanted = interest
        wanted.formUnion(insert)
        wanted.subtract(remove)
        guard wanted != interest, let context else { return }
        interest = wanted
        do {
            try watch(context.pointee.c.fd, wanted)
        } catch {
            // Only a bad descriptor fails here.
            endError = RedisError(.connect, server: server, "cannot watch descriptor \(context.pointee.c.fd): \(error)")
            redisAsyncFree(context)
        }
    }

    /// hiredis is freeing the context (refused, lost, closed): the watch goes,
    /// and ``onClose`` is called soon (by the disconnect callback if hiredis
    /// calls one, else on the next turn of the loop).
    private func released() {
        guard context != nil else { return }
        // First: the context is hiredis's to free now, not the client's.
        context = nil
        try? watch(-1, [])
        interest = []
        connectTimer?.cancel()
        connectTimer = nil
        watchdog?.cancel()
        watchdog = nil
        // The timer holds the connection - which hiredis still reaches until
        // it has finished freeing - and its onClose until it runs, or until
        // the loop closes and lets go of it.
        _ = after(0) { [self] in end(nil) }
        // The client is no longer held by its connection: nothing of it is
        // left to run, and a loop stopped now must not keep it in a cycle.
        watch = { _, _ in }
    }

    private func end(_ error: RedisError?) {
        guard !ended else { return }
        ended = true
        if endError == nil { endError = error }
        let callback = onClose
        onClose = nil
        after = { _, _ in nil }
        callback?(endError)
    }

    /// A reply came (or a command failed with the connection).
    private func replied() {
        waiting -= 1
        lastReply = monotonicNow()
    }

    /// Watches for replies while some are due: when nothing has come for
    /// ``replyTimeout`` seconds, the connection is given up.
    private func armWatchdog() {
        guard let replyTimeout, watchdog == nil else { return }
        let due = lastReply + replyTimeout - monotonicNow()
        watchdog = after(max(due, 0.001)) { [weak self] in
            guard let self else { return }
            watchdog = nil
            guard waiting > 0, let context else { return }
            if monotonicNow() - lastReply >= replyTimeout {
                // A loop held up (a busy machine, a long callback) may have
                // replies waiting unread, and libev runs this timer before
                // the descriptor's callback: read them before giving up.
                var ready = pollfd(fd: context.pointee.c.fd, events: Int16(POLLIN), revents: 0)
                if poll(&ready, 1, 0) > 0 { redisAsyncHandleRead(context) }
            }
            guard waiting > 0, let context = self.context else { return }
            if monotonicNow() - lastReply >= replyTimeout {
                endError = RedisError(.timeout, server: server, "no reply within \(replyTimeout) s")
                redisAsyncFree(context)
            } else {
                armWatchdog()
            }
        }
    }

    private func timedOut(after seconds: Double) {
        guard !isConnected, let context else { return }
        endError = RedisError(.connect, server: server, "no connection after \(seconds) s")
        redisAsyncFree(context)
    }

    /// The descriptor is ready: hiredis reads and writes.
    func handle(_ ready: Interest) {
        withExtendedLifetime(self) {
            if let context, interest.contains(.read), !ready.isDisjoint(with: [.read, .error]) {
                redisAsyncHandleRead(context)
            }
            if let context, interest.contains(.write), !ready.isDisjoint(with: [.write, .error]) {
                redisAsyncHandleWrite(context)
            }
        }
    }

    // MARK: commands

    func send(_ arguments: [String], _ reply: @escaping (Result<RedisReply, RedisError>) -> Void) {
        guard let context, !ended else {
            return reply(.failure(RedisError(.closed, server: server, "command \(arguments.first ?? "") not sent")))
        }
        var bytes: [UInt8] = []
        var starts: [Int] = []
        var lengths: [Int] = []
        for argument in arguments {
            starts.append(bytes.count)
            bytes.append(contentsOf: argument.utf8)
            lengths.append(bytes.count - starts.last!)
        }
        bytes.append(0) // never empty
        let box = Unmanaged.passRetained(ReplyBox(reply, server: server)).toOpaque()
        let status = bytes.withUnsafeBufferPointer { buffer in
            var argv: [UnsafePointer<CChar>?] = starts.map {
                UnsafeRawPointer(buffer.baseAddress! + $0).assumingMemoryBound(to: CChar.self)
            }
            return redisAsyncCommandArgv(context, { context, reply, box in
                let handler = Unmanaged<ReplyBox>.fromOpaque(box!).takeRetainedValue()
                // The connection's own error (a timeout) says more than hiredis's empty one.
                let connection = context?.pointee.data.map(HiredisConnection.connection)
                connection?.replied()
                handler.deliver(reply.map { UnsafePointer($0.assumingMemoryBound(to: redisReply.self)) }, context,
                                ended: connection?.endError)
            }, box, Int32(arguments.count), &argv, lengths)
        }
        if status == REDIS_OK {
            waiting += 1
            if waiting == 1 { lastReply = monotonicNow() }
            armWatchdog()
        } else {
            Unmanaged<ReplyBox>.fromOpaque(box).release()
            reply(.failure(RedisError(.closed, server: server, "command \(arguments.first ?? "") not sent: the connection is closing")))
        }
    }

    func close() {
        guard let context, !ended else { return }
        if !isConnected {
            endError = RedisError(.closed, server: server, "closed before the connection was made")
            return redisAsyncFree(context)
        }
        redisAsyncDisconnect(context)
    }
}

/// A command's reply callback, kept alive by hiredis (as its privdata)
/// until the reply, or the connection's end, calls it.
private final class ReplyBox {
    let callback: (Result<RedisReply, RedisError>) -> Void
    let server: String

    init(_ callback: @escaping (Result<RedisReply, RedisError>) -> Void, server: String) {
        self.callback = callback
        self.server = server
    }

    func deliver(_ reply: UnsafePointer<redisReply>?, _ context: UnsafeMutablePointer<redisAsyncContext>?, ended: RedisError?) {
        guard let reply else {
            if let ended { return callback(.failure(ended)) }
            let message = context.map { HiredisConnection.errorText($0, or: "connection closed before the reply") }
            let connected = context.map { $0.pointee.c.flags & REDIS_CONNECTED != 0 } ?? true
            return callback(.failure(RedisError(connected ? .disconnected : .connect, server: server,
                                                message ?? "connection closed before the reply")))
        }
        switch RedisReply(reply) {
        case .error(let message): callback(.failure(RedisError(.server, server: server, message)))
        case let value: callback(.success(value))
        }
    }
}
