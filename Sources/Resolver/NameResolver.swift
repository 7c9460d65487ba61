#if canImport(Glibc)
import Glibc
#endif
import CAres
import EventCore

/// How a ``NameResolver`` asks: which servers, how long, how often.
///
/// The defaults are the system resolver's: the servers of
/// `/etc/resolv.conf`, the hosts file before DNS.
public struct ResolverOptions: Sendable {
    /// The DNS servers to ask, in order (c-ares' server list); nil asks those
    /// of ``resolvConfPath`` (`/etc/resolv.conf` by default).
    public var servers: [SocketAddress]?
    /// How long to wait for an answer per try, before asking the next server
    /// (c-ares doubles it each round, as the system resolver does).
    public var timeout: Duration
    /// How many rounds over the servers before giving up with
    /// ``/EventCore/EventLoopError/NameResolutionFailure/noAnswer``.
    public var tries: Int
    /// Whether the hosts file (`/etc/hosts`) is read before DNS, as the
    /// system resolver does.
    public var usesHostsFile: Bool
    /// The `resolv.conf` to read servers and search domains from; nil reads
    /// `/etc/resolv.conf`.
    public var resolvConfPath: String?
    /// The most addresses a lookup returns (the first ones, in the
    /// resolver's order): a server that answers with thousands cannot flood
    /// the caller.
    public var maximumAddresses: Int

    /// A DNS server as a command line names it: `ADDRESS` (port 53),
    /// `ADDRESS:PORT`, `[IPV6]:PORT` - numeric, since naming a name server by
    /// name would need a name server.
    ///
    /// - Throws: ``/EventCore/EventLoopError`` (``/EventCore/EventLoopError/Code/invalidAddress``) naming the text.
    public static func server(parsing text: String) throws(EventLoopError) -> SocketAddress {
        if let address = numericAddress(text, port: 53) { return address }
        if let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]),
           let address = numericAddress(String(text[..<colon]), port: port) {
            return address
        }
        throw EventLoopError(.invalidAddress, operation: "DNS server \"\(text)\"",
                             detail: "expected ADDRESS, ADDRESS:PORT or [IPV6]:PORT, with a numeric address")
    }

    /// The system resolver's ways, with a timeout of 2 s per try and 2 tries.
    public init(servers: [SocketAddress]? = nil, timeout: Duration = .seconds(2), tries: Int = 2,
                usesHostsFile: Bool = true, resolvConfPath: String? = nil, maximumAddresses: Int = 64) {
        self.servers = servers
        self.timeout = timeout
        self.tries = tries
        self.usesHostsFile = usesHostsFile
        self.resolvConfPath = resolvConfPath
        self.maximumAddresses = maximumAddresses
    }
}

/// Host names to addresses without blocking the loop: c-ares (the resolver
/// gevent and many libev programs pair with libev) driven by the loop's own
/// readiness watches and one timer, as libcurl and hiredis are - no thread.
///
/// A resolver belongs to its loop's thread: make it, resolve with it and
/// close it there (it is not `Sendable`).
///
/// ```swift
/// let resolver = try NameResolver(on: loop)
/// let addresses = try await resolver.resolve("example.com", port: 443)
/// let socket = try await AsyncSocket.connect(toHost: "example.com", port: 443, using: resolver)
/// ```
///
/// A lookup returns every address of the name - `A` and `AAAA`, the hosts
/// file first - in c-ares' order (RFC 6724's). Its errors name the host and
/// the reason (``/EventCore/EventLoopError/Code/nameResolution(_:)``); cancelling the
/// task or its deadline (``/EventCore/withTimeout(_:_:)``) ends a pending lookup.
public final class NameResolver<L: EventLoop> {
    /// The loop it resolves on.
    public let loop: L
    /// How it asks.
    public let options: ResolverOptions

    private var channel: ares_channel?
    private let events = SocketStateEvents()
    private var watches: [Int32: L.Watch] = [:]
    private var timer: (any Cancellable)?
    /// Lookups waiting for c-ares, and how many of them still have someone waiting.
    private var outstanding = 0
    private var wanted = 0
    /// How deep inside calls into c-ares this resolver is: answers wait
    /// until the outermost returns, and so does a close (c-ares must not be
    /// destroyed inside its own callbacks).
    private var depth = 0
    private var answers: [(NameLookup, Result<[SocketAddress], EventLoopError>)] = []
    private var closeRequested = false

    /// A resolver on `loop`.
    ///
    /// - Throws: ``/EventCore/EventLoopError`` if c-ares cannot start (an unreadable
    ///   `resolvConfPath`, a bad option) or a server is not an IP address.
    public init(on loop: L, options: ResolverOptions = ResolverOptions()) throws(EventLoopError) {
        guard NameResolverLibrary.initialized else {
            throw EventLoopError(.invalidArgument, operation: "ares_library_init", detail: "c-ares did not initialize")
        }
        guard options.tries >= 1, options.timeout > .zero, options.maximumAddresses >= 1 else {
            throw EventLoopError(.invalidArgument, operation: "NameResolver",
                                 detail: "tries \(options.tries), timeout \(LoopTime.describe(options.timeout)) and maximumAddresses \(options.maximumAddresses) must be positive")
        }
        self.loop = loop
        self.options = options
        let timeoutMilliseconds = Int32(clamping: min(max(Int64(LoopTime.seconds(options.timeout) * 1000), 1), Int64(Int32.max)))
        let sink = Unmanaged.passUnretained(events).toOpaque()
        var channel: ares_channel?
        let status = (options.usesHostsFile ? "fb" : "b").withCString { lookups in
            if let path = options.resolvConfPath {
                return path.withCString { path in
                    CAres_init(&channel, nameResolverSocketState, sink, timeoutMilliseconds, Int32(clamping: options.tries), lookups, path)
                }
            }
            return CAres_init(&channel, nameResolverSocketState, sink, timeoutMilliseconds, Int32(clamping: options.tries), lookups, nil)
        }
        guard status == ARES_SUCCESS, let channel else {
            throw EventLoopError(.invalidArgument, operation: "ares_init_options", detail: String(cString: ares_strerror(status)))
        }
        self.channel = channel
        // unowned(unsafe): c-ares reports sockets only from calls this
        // resolver makes, the last of them ares_destroy in close().
        events.changed = { [unowned(unsafe) self] fd, read, write in self.socketStateChanged(fd, read: read, write: write) }
        if let servers = options.servers {
            let list = servers.map { $0.family == .ipv6 ? "[\($0.host)]:\($0.port)" : "\($0.host):\($0.port)" }
            guard !servers.isEmpty, servers.allSatisfy({ $0.family != .unix }) else {
                close()
                throw EventLoopError(.invalidAddress, operation: "NameResolver",
                                     detail: "DNS servers must be IP addresses with ports: \(servers)")
            }
            let status = ares_set_servers_ports_csv(channel, list.joined(separator: ","))
            guard status == ARES_SUCCESS else {
                close()
                throw EventLoopError(.invalidAddress, operation: "ares_set_servers_ports_csv(\(list.joined(separator: ",")))",
                                     detail: String(cString: ares_strerror(status)))
            }
        }
    }

    deinit { close() }

    /// How many sockets of c-ares the loop watches for it now (none once
    /// no lookup is pending).
    package var watchCount: Int { watches.count }

    /// Whether it is closed: lookups fail with ``/EventCore/EventLoopError/Code/loopClosed``.
    public var isClosed: Bool { channel == nil }

    /// Ends every pending lookup (its completion gets
    /// ``/EventCore/EventLoopError/Code/loopClosed``), stops its watches and timer, and
    /// takes no more lookups. Harmless twice.
    public func close() {
        guard channel != nil else { return }
        // Destroyed by the outermost call into c-ares - this one, unless
        // called from inside c-ares (a completion). ares_destroy calls back
        // each pending lookup (ARES_EDESTRUCTION) and each socket's state
        // (closed): both still find this resolver.
        closeRequested = true
        callCAres(deferring: false) { _ in }
    }

    /// Calls c-ares with the channel, then - once out of every call into it -
    /// closes if asked meanwhile, sets the timer for what is pending, and
    /// hands out the answers that came: at once, or on the next turn of the
    /// loop when `deferring` (a completion never runs before `resolve`
    /// returns).
    private func callCAres(deferring: Bool, _ body: (ares_channel) -> Void) {
        guard let channel else { return }
        depth += 1
        body(channel)
        if depth == 1 && closeRequested {
            ares_destroy(channel)
            self.channel = nil
            for watch in watches.values { watch.cancel() }
            watches.removeAll()
            timer?.cancel()
            timer = nil
        }
        depth -= 1
        guard depth == 0 else { return }
        updateTimer()
        let ready = answers
        answers = []
        for (lookup, result) in ready {
            if deferring { deliverLater(lookup, result) } else { lookup.deliver(result) }
        }
    }

    /// Looks `host` up, then calls `completion` on the loop with its
    /// addresses (each with `port`), or the error that names why not.
    ///
    /// A numeric address (`127.0.0.1`, `::1`) is its own answer, without a
    /// lookup. `completion` runs on a later turn of the loop, never before
    /// this returns.
    ///
    /// - Parameters:
    ///   - host: a name (`example.com`), or a numeric address.
    ///   - port: the port each address gets.
    ///   - family: only addresses of this family (``/EventCore/SocketAddress/Family/ipv4``
    ///     or ``/EventCore/SocketAddress/Family/ipv6``); nil for both.
    ///   - completion: called on the loop with the addresses, or the error.
    /// - Returns: the lookup, which ``NameLookup/cancel()`` ends (its
    ///   completion is then not called).
    @discardableResult
    public func resolve(_ host: String, port: UInt16 = 0, family: SocketAddress.Family? = nil,
                        _ completion: @escaping (Result<[SocketAddress], EventLoopError>) -> Void) -> NameLookup {
        let lookup = NameLookup(host: host, port: port, limit: options.maximumAddresses, completion: completion)
        let immediate: Result<[SocketAddress], EventLoopError>?
        if channel == nil {
            immediate = .failure(EventLoopError(.loopClosed, operation: "resolve(\(NameLookup.shown(host)))"))
        } else if family == .unix {
            immediate = .failure(EventLoopError(.invalidArgument, operation: "resolve(\(NameLookup.shown(host)))",
                                                detail: "a name resolves to IPv4 or IPv6 addresses, not Unix ones"))
        } else if let numeric = numericAddress(host, port: port) {
            immediate = family == nil || numeric.family == family ? .success([numeric])
                : .failure(lookup.error(.noAddress))
        } else if let reason = Self.invalidName(host) {
            immediate = .failure(EventLoopError(.nameResolution(.badName), operation: "resolve(\(NameLookup.shown(host)))",
                                                detail: reason))
        } else {
            immediate = nil
        }
        if let immediate {
            deliverLater(lookup, immediate)
            return lookup
        }
        var hints = ares_addrinfo_hints()
        hints.ai_family = family == .ipv4 ? AF_INET : family == .ipv6 ? AF_INET6 : AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = ARES_AI_NUMERICSERV
        outstanding += 1
        wanted += 1
        lookup.isWanted = true
        // unowned(unsafe): c-ares answers only from calls this resolver makes.
        lookup.answered = { [unowned(unsafe) self] lookup, result in self.answered(lookup, result) }
        lookup.abandon = { [weak self, unowned lookup] in self?.abandoned(lookup) }
        let argument = Unmanaged.passRetained(lookup).toOpaque()
        callCAres(deferring: true) { channel in
            ares_getaddrinfo(channel, host, String(port), &hints, nameResolverAnswer, argument)
        }
        return lookup
    }

    /// Looks `host` up on the loop and returns its addresses (each with
    /// `port`): the async form of ``resolve(_:port:family:_:)``. Call it from
    /// a task on the resolver's loop.
    ///
    /// - Throws: ``/EventCore/EventLoopError`` (``/EventCore/EventLoopError/Code/nameResolution(_:)``
    ///   naming the host and why; ``/EventCore/EventLoopError/Code/timedOut`` at the
    ///   task's deadline), `CancellationError`.
    nonisolated(nonsending) public func resolve(_ host: String, port: UInt16 = 0,
                                                family: SocketAddress.Family? = nil) async throws -> [SocketAddress] {
        guard let core = loop.executor as? LoopExecutorCore<L> else {
            preconditionFailure("NameResolver: the loop's executor is not the package's")
        }
        return try await core.suspend { (suspension: Suspension<[SocketAddress], L>, _) in
            let lookup = self.resolve(host, port: port, family: family) { result in
                suspension.finish(result.mapError { $0 })
            }
            suspension.cleanup = { lookup.cancel() }
        }
    }

    // MARK: c-ares on the loop

    fileprivate func socketStateChanged(_ fd: Int32, read: Bool, write: Bool) {
        var interest: Interest = []
        if read { interest.insert(.read) }
        if write { interest.insert(.write) }
        if interest.isEmpty {
            watches.removeValue(forKey: fd)?.cancel()
        } else if let watch = watches[fd] {
            try? watch.setInterest(interest)
        } else {
            // unowned(unsafe): every watch is cancelled before the resolver goes (close).
            do {
                watches[fd] = try loop.watchReadiness(FileDescriptor(rawValue: fd), interest) { [unowned(unsafe) self] ready in
                    self.process(fd, ready)
                }
            } catch {
                // A socket the loop cannot watch: c-ares times the query out
                // and tries the next server, as it does for a lost reply.
            }
        }
    }

    private func process(_ fd: Int32, _ ready: Interest) {
        let readable = ready.contains(.read) || ready.contains(.error)
        let writable = ready.contains(.write) || ready.contains(.error)
        callCAres(deferring: false) { channel in
            ares_process_fd(channel, readable ? fd : ARES_SOCKET_BAD, writable ? fd : ARES_SOCKET_BAD)
        }
    }

    private func updateTimer() {
        timer?.cancel()
        timer = nil
        guard let channel, outstanding > 0 else { return }
        let next = CAres_next_timeout(channel)
        guard next >= 0 else { return }
        // unowned(unsafe): the timer is cancelled before the resolver goes (close).
        timer = loop.schedule(after: LoopTime.duration(next + 0.000_5)) { [unowned(unsafe) self] in
            self.timer = nil
            self.callCAres(deferring: false) { channel in ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD) }
        }
    }

    fileprivate func answered(_ lookup: NameLookup, _ result: Result<[SocketAddress], EventLoopError>) {
        outstanding -= 1
        if lookup.isWanted {
            lookup.isWanted = false
            wanted -= 1
        }
        answers.append((lookup, result))
    }

    fileprivate func abandoned(_ lookup: NameLookup) {
        guard lookup.isWanted else { return }
        lookup.isWanted = false
        wanted -= 1
        // c-ares cancels a channel's lookups all at once: when nobody waits
        // for any of them, they stop asking (their answers are dropped).
        if wanted == 0, outstanding > 0 {
            callCAres(deferring: false) { channel in ares_cancel(channel) }
        }
    }

    private func deliverLater(_ lookup: NameLookup, _ result: Result<[SocketAddress], EventLoopError>) {
        loop.schedule(after: .zero) { lookup.deliver(result) }
    }

    /// Why `host` is not a host name (RFC 1035's limits), or nil.
    static func invalidName(_ host: String) -> String? {
        let bytes = Array(host.utf8)
        if bytes.isEmpty { return "the name is empty" }
        if bytes.contains(0) { return "the name contains a NUL byte" }
        let name = bytes.last == UInt8(ascii: ".") ? bytes.dropLast() : bytes[...]
        if name.count > 253 { return "the name is \(bytes.count) bytes; the most is 253" }
        for label in name.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            if label.isEmpty { return "the name has an empty label" }
            if label.count > 63 { return "a label is \(label.count) bytes; the most is 63" }
        }
        return nil
    }
}

/// One lookup of a ``NameResolver``: ``cancel()`` ends it.
public final class NameLookup: Cancellable {
    /// The name looked up.
    public let host: String
    let port: UInt16
    let limit: Int
    private var completion: ((Result<[SocketAddress], EventLoopError>) -> Void)?
    fileprivate var abandon: (() -> Void)?
    fileprivate var answered: ((NameLookup, Result<[SocketAddress], EventLoopError>) -> Void)?
    fileprivate var isWanted = false

    init(host: String, port: UInt16, limit: Int, completion: @escaping (Result<[SocketAddress], EventLoopError>) -> Void) {
        self.host = host
        self.port = port
        self.limit = limit
        self.completion = completion
    }

    /// Whether its completion is still to be called.
    public var isPending: Bool { completion != nil }

    /// Ends the lookup: its completion is not called. Harmless once it has
    /// completed or been cancelled.
    public func cancel() {
        guard completion != nil else { return }
        completion = nil
        abandon?()
        abandon = nil
    }

    fileprivate func deliver(_ result: Result<[SocketAddress], EventLoopError>) {
        guard let completion else { return }
        self.completion = nil
        abandon = nil
        completion(result)
    }

    func error(_ reason: EventLoopError.NameResolutionFailure, detail: String? = nil) -> EventLoopError {
        EventLoopError(.nameResolution(reason), operation: "resolve(\(Self.shown(host)))", detail: detail)
    }

    /// The host as a message shows it: at most 80 characters, control bytes escaped.
    static func shown(_ host: String) -> String {
        let escaped = host.unicodeScalars.prefix(80).map { $0.value < 0x20 || $0.value == 0x7f ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined()
        return host.unicodeScalars.count > 80 ? escaped + "... (\(host.utf8.count) bytes)" : escaped
    }

    /// The result of c-ares' answer: the addresses, or the error that says why none.
    func result(status: Int32, _ answer: UnsafeMutablePointer<ares_addrinfo>?) -> Result<[SocketAddress], EventLoopError> {
        switch status {
        case ARES_SUCCESS:
            var addresses: [SocketAddress] = []
            var node = answer?.pointee.nodes
            while let current = node, addresses.count < limit {
                if let raw = current.pointee.ai_addr,
                   var address = SocketAddress(raw, length: Int(current.pointee.ai_addrlen)),
                   address.family != .unix {
                    if address.port != port, let same = try? SocketAddress(host: address.host, port: port) { address = same }
                    if !addresses.contains(address) { addresses.append(address) }
                }
                node = current.pointee.ai_next
            }
            return addresses.isEmpty ? .failure(error(.noAddress)) : .success(addresses)
        case ARES_ENOTFOUND, ARES_ENONAME: return .failure(error(.notFound))
        case ARES_ENODATA: return .failure(error(.noAddress))
        case ARES_ESERVFAIL, ARES_ENOTIMP, ARES_EFORMERR: return .failure(error(.serverFailure))
        case ARES_EREFUSED, ARES_ECONNREFUSED: return .failure(error(.refused))
        case ARES_EBADRESP, ARES_EOF: return .failure(error(.badReply))
        case ARES_ETIMEOUT: return .failure(error(.noAnswer))
        case ARES_EBADNAME: return .failure(error(.badName))
        case ARES_EDESTRUCTION, ARES_ECANCELLED:
            return .failure(EventLoopError(.loopClosed, operation: "resolve(\(Self.shown(host)))", detail: "the resolver was closed"))
        default:
            return .failure(error(.serverFailure, detail: String(cString: ares_strerror(status))))
        }
    }
}

/// Where c-ares' socket callback lands: a plain class, since a C callback
/// cannot name the generic resolver.
final class SocketStateEvents {
    var changed: (Int32, Bool, Bool) -> Void = { _, _, _ in }
}

/// c-ares' socket callback (ARES_OPT_SOCK_STATE_CB): the socket's watch is
/// made, changed or cancelled.
private let nameResolverSocketState: ares_sock_state_cb = { data, fd, readable, writable in
    guard let data else { return }
    Unmanaged<SocketStateEvents>.fromOpaque(data).takeUnretainedValue().changed(fd, readable != 0, writable != 0)
}

/// c-ares' answer to one lookup: the lookup was retained for it, and is
/// released here (c-ares calls it exactly once: answered, failed, cancelled
/// or destroyed).
private let nameResolverAnswer: ares_addrinfo_callback = { argument, status, _, answer in
    guard let argument else { return }
    let lookup = Unmanaged<NameLookup>.fromOpaque(argument).takeRetainedValue()
    let result = lookup.result(status: status, answer)
    if let answer { ares_freeaddrinfo(answer) }
    let answered = lookup.answered
    lookup.answered = nil
    answered?(lookup, result)
}

/// `host` as a numeric address (IPv4, IPv6, or IPv6 in brackets) with `port`, or nil.
package func numericAddress(_ host: String, port: UInt16) -> SocketAddress? {
    let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    if let address = try? SocketAddress(ipv4: bare, port: port) { return address }
    return try? SocketAddress(ipv6: bare, port: port)
}

/// c-ares' library state, initialized once per process (thread-safe:
/// a global's initializer runs once).
enum NameResolverLibrary {
    static let initialized: Bool = ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS
}
