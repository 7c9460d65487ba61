#if canImport(Glibc)
import Glibc
#endif

/// What the loops, their sockets and their threads throw: one error type,
/// whose ``code`` generic code switches on, on either loop.
///
/// ```swift
/// do {
///     let socket = try await AsyncSocket.connect(to: address, on: executor)
/// } catch let error as EventLoopError {
///     switch error.code {
///     case .system(.connectionRefused): retryLater()
///     case .timedOut: giveUp()
///     case .loopClosed: return
///     default: throw error
///     }
/// }
/// ```
///
/// Besides the code, an error carries what it is about where that is
/// known - the ``descriptor``, the ``operation`` (the system call or the
/// package's own, with its argument: `"connect(127.0.0.1:8000)"`), the
/// ``peer`` of a connection - and its ``description`` is a sentence that
/// names them: `read from 127.0.0.1:8000 (descriptor 7) failed: Connection
/// reset by peer (ECONNRESET)`. Cancellation stays Swift's own
/// `CancellationError`.
public struct EventLoopError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Code: Hashable, Sendable {
        /// The loop has been closed and takes no more work (also the group's
        /// and the thread pool's: they are shut down).
        case loopClosed
        /// A descriptor was closed: while a task waited on it, or before an
        /// operation of a socket that had been closed.
        case descriptorClosed
        /// A descriptor the loop cannot watch, for the reason given.
        case badDescriptor(BadDescriptor)
        /// A system call failed with this `errno`.
        case system(Errno)
        /// An operation ran past its deadline (``withTimeout(_:_:)``).
        case timedOut
        /// An argument out of its range: the ``detail`` names it.
        case invalidArgument
        /// A host, port or address that is not one.
        case invalidAddress
        /// libev lets one loop watch a signal; another loop watches this one.
        case signalOwnedByAnotherLoop
        /// Child watchers work on the default loop only (it owns `SIGCHLD`).
        case childWatcherNeedsDefaultLoop
        /// The loop cannot be embedded: its backend is not embeddable, or it is the host itself.
        case notEmbeddable
        /// libev could not create a loop with the backends and flags asked for.
        case loopCreationFailed
        /// A group's graceful shutdown ran out of time and stopped loops still busy.
        case shutdownTimedOut
        /// The stream ended before what was asked for arrived - a line, a
        /// delimiter, a byte count (asyncio's `IncompleteReadError`): the
        /// ``detail`` says what was asked and how much came.
        case endOfStream
        /// A host name did not resolve, for the reason given; the
        /// ``operation`` names the host: `resolve(example.com)`.
        case nameResolution(NameResolutionFailure)
        /// A TLS connection failed, for the reason given; the ``detail`` has
        /// OpenSSL's own words.
        case tls(TLSFailure)
    }

    /// Why a TLS connection failed.
    public enum TLSFailure: Hashable, Sendable {
        /// The peer's certificate is not signed by a trusted authority
        /// (self-signed, or its issuer unknown).
        case untrustedCertificate
        /// The certificate is not for the name (or address) connected to.
        case nameMismatch
        /// The certificate has expired, or is not valid yet.
        case expiredCertificate
        /// The certificate failed verification for another reason (the detail says which).
        case invalidCertificate
        /// The handshake failed: no common protocol version or cipher, an
        /// alert from the peer, bytes that are not TLS.
        case handshakeFailed
        /// The peer closed the connection without `close_notify`: what came
        /// may be cut short.
        case unexpectedEOF
        /// A TLS protocol error after the handshake.
        case protocolError
        /// The configuration cannot be used: a certificate or key file that
        /// does not load, a key that does not match its certificate.
        case badConfiguration
    }

    /// Why a host name did not resolve.
    public enum NameResolutionFailure: Hashable, Sendable {
        /// The name does not exist (`NXDOMAIN`).
        case notFound
        /// The name exists but has no address of the family asked for (no `A`/`AAAA` record).
        case noAddress
        /// The server could not answer (`SERVFAIL`, `NOTIMP`, `FORMERR`).
        case serverFailure
        /// Every server refused to answer (`REFUSED`, or `SERVFAIL`/`NOTIMP`
        /// from each) or could not be reached (a port unreachable): c-ares
        /// reports these alike, as "could not contact DNS servers".
        case refused
        /// A reply that is not a DNS answer to the question: garbage, or cut short.
        case badReply
        /// No server answered within the resolver's tries and timeout.
        case noAnswer
        /// Not a host name: empty, longer than 253 bytes, a label over 63, or a NUL in it.
        case badName
    }

    /// Why a descriptor cannot be watched.
    public enum BadDescriptor: Hashable, Sendable {
        /// It is not open (or negative).
        case notOpen
        /// It is the loop's own epoll instance: the kernel refuses to watch an
        /// epoll instance with itself (libev would abort on the refusal).
        case ownBackend
        /// An epoll instance that watches this loop's own, directly or through
        /// others, or nests them too deep: a cycle the kernel refuses (`ELOOP`).
        case epollCycle
        /// This loop watches it already (the epoll loop: one watch per descriptor).
        case alreadyWatched
        /// This loop does not watch it.
        case notWatched
    }

    /// What went wrong.
    public let code: Code
    /// The descriptor it concerns, if one.
    public let descriptor: FileDescriptor?
    /// The operation that failed, with its argument where that helps:
    /// `"connect(127.0.0.1:8000)"`, `"read"`, `"epoll_ctl(ADD)"`.
    public let operation: String?
    /// The other end of the connection, when known.
    public let peer: SocketAddress?
    /// More, in words: which argument was out of range, how long the timeout was.
    public let detail: String?

    /// An error of `code`, with what it concerns.
    public init(_ code: Code, descriptor: FileDescriptor? = nil, operation: String? = nil,
                peer: SocketAddress? = nil, detail: String? = nil) {
        self.code = code
        self.descriptor = descriptor
        self.operation = operation
        self.peer = peer
        self.detail = detail
    }

    /// The loop has been closed and takes no more work.
    public static let loopClosed = EventLoopError(.loopClosed)

    /// `operation` failed with `errno`.
    public static func system(_ operation: String, _ errno: Errno, descriptor: FileDescriptor? = nil,
                              peer: SocketAddress? = nil) -> EventLoopError {
        EventLoopError(.system(errno), descriptor: descriptor, operation: operation, peer: peer)
    }

    /// `operation` failed with the calling thread's current `errno`.
    public static func system(_ operation: String, descriptor: FileDescriptor? = nil,
                              peer: SocketAddress? = nil) -> EventLoopError {
        system(operation, Errno(rawValue: Glibc.errno), descriptor: descriptor, peer: peer)
    }

    /// Matches any error with this error's ``code``, whatever else it
    /// says, so that a `catch` or `switch` names the case it handles, as
    /// SwiftNIO's `catch ChannelError.ioOnClosedChannel` does:
    ///
    /// ```swift
    /// do {
    ///     try await executor.sleep(for: .seconds(1))
    /// } catch EventLoopError.loopClosed {
    ///     return // the loop is shutting down
    /// }
    /// ```
    ///
    /// (The one such constant is ``loopClosed``: a `timedOut` would make
    /// `case .timedOut` ambiguous in every `switch` over an `Errno`. Match
    /// other codes with `catch let error as EventLoopError where error.code == .timedOut`.)
    public static func ~= (pattern: EventLoopError, value: any Error) -> Bool {
        (value as? EventLoopError)?.code == pattern.code
    }

    /// The `errno` of a failed system call (``Code/system(_:)``), else nil.
    public var errno: Errno? {
        if case .system(let errno) = code { return errno }
        return nil
    }

    /// The same error, about `descriptor` and `peer` where it did not say.
    public func about(descriptor: FileDescriptor?, peer: SocketAddress?) -> EventLoopError {
        EventLoopError(code, descriptor: self.descriptor ?? descriptor, operation: operation,
                       peer: self.peer ?? peer, detail: detail)
    }

    /// A sentence that names what was wrong and what it concerns:
    /// `"connect(127.0.0.1:8000) failed: Connection refused (ECONNREFUSED)"`,
    /// `"read (descriptor 7, peer 127.0.0.1:8000) failed: Connection reset by
    /// peer (ECONNRESET)"`, `"descriptor 9 cannot be watched: it is not open"`.
    public var description: String {
        // A peer names a connection better than its descriptor's number
        // (which the error still carries): the number only when no peer is known.
        var about: [String] = []
        if let peer {
            if operation?.contains("\(peer)") != true { about.append("peer \(peer)") }
        } else if let descriptor {
            about.append("descriptor \(descriptor.rawValue)")
        }
        let context = about.isEmpty ? "" : " (\(about.joined(separator: ", ")))"
        let prefix = operation.map { "\($0)\(context): " } ?? (context.isEmpty ? "" : "\(about.joined(separator: ", ")): ")
        var sentence: String
        switch code {
        case .system(let errno):
            sentence = "\(operation ?? "a system call")\(context) failed: \(errno) (\(errno.symbolicName))"
        case .loopClosed:
            sentence = prefix + "the loop has been closed and takes no more work"
        case .descriptorClosed:
            sentence = "\(operation.map { "\($0): " } ?? "")descriptor \(descriptor.map { "\($0.rawValue) " } ?? "")is closed"
                + (peer.map { " (peer \($0))" } ?? "")
        case .badDescriptor(let reason):
            let why = switch reason {
            case .notOpen: "it is not open"
            case .ownBackend: "it is this loop's own epoll instance, which the kernel will not watch with itself"
            case .epollCycle: "it is an epoll instance that watches this loop (or nests too deep), a cycle the kernel refuses"
            case .alreadyWatched: "this loop watches it already"
            case .notWatched: "this loop does not watch it"
            }
            sentence = "\(operation.map { "\($0): " } ?? "")descriptor \(descriptor.map { "\($0.rawValue) " } ?? "")cannot be watched: \(why)"
        case .timedOut:
            sentence = prefix + "timed out"
        case .invalidArgument:
            sentence = prefix + "invalid argument"
        case .invalidAddress:
            sentence = prefix + "not a usable address"
        case .signalOwnedByAnotherLoop:
            // The detail names the signal: it is the sentence's subject.
            return "\(detail ?? "the signal") is already watched by another loop; libev lets one loop watch a signal"
        case .childWatcherNeedsDefaultLoop:
            sentence = prefix + "child watchers work only on the default loop (Loop.defaultLoop()), which handles SIGCHLD"
        case .notEmbeddable:
            sentence = prefix + "the loop cannot be embedded"
        case .loopCreationFailed:
            sentence = prefix + "libev could not create the loop"
        case .shutdownTimedOut:
            sentence = prefix + "loops still had work when the graceful shutdown's time was up, and were stopped"
        case .endOfStream:
            sentence = prefix + "the stream ended early"
        case .nameResolution(let reason):
            let why = switch reason {
            case .notFound: "the name does not exist (NXDOMAIN)"
            case .noAddress: "the name has no address (no A or AAAA record)"
            case .serverFailure: "the DNS server failed to answer (SERVFAIL)"
            case .refused: "the DNS servers refused to answer or could not be reached"
            case .badReply: "the DNS server's reply is malformed"
            case .noAnswer: "no DNS server answered"
            case .badName: "not a valid host name"
            }
            sentence = prefix + why
        case .tls(let reason):
            let why = switch reason {
            case .untrustedCertificate: "the certificate is not signed by a trusted authority"
            case .nameMismatch: "the certificate is not for this name"
            case .expiredCertificate: "the certificate has expired or is not yet valid"
            case .invalidCertificate: "the certificate failed verification"
            case .handshakeFailed: "the TLS handshake failed"
            case .unexpectedEOF: "the peer closed the connection without close_notify"
            case .protocolError: "TLS protocol error"
            case .badConfiguration: "the TLS configuration cannot be used"
            }
            sentence = prefix + why
        }
        if let detail { sentence += (code == .timedOut ? " " : ": ") + detail }
        return sentence
    }
}

