#if canImport(Glibc)
import Glibc
#endif
import CSSL
import EventCore

/// How TLS connections of one side are made: certificates to trust or to
/// present, the protocols offered (ALPN), how long a handshake may take.
///
/// TLS 1.2 and 1.3 only. A client verifies the server's certificate by
/// default, against the system's CA store or ``caFile``, and checks that it
/// is for the name connected to; ``verifiesPeer`` = false turns both off
/// (for tests against a self-signed server - name it as such where a user
/// sees it, as curl's `--insecure` does).
public struct TLSConfiguration: Sendable {
    /// Which end of the connection.
    public enum Role: Sendable {
        /// Connects, sends the server name (SNI) and verifies the server.
        case client
        /// Accepts, presenting `certificateChain` (PEM) with `privateKey` (PEM).
        case server(certificateChain: String, privateKey: String)
    }

    /// Which end.
    public var role: Role
    /// A PEM file of the authorities to trust; nil trusts the system's store.
    public var caFile: String?
    /// Whether the peer's certificate is verified (a client's server; a
    /// server asks for no client certificate). On by default.
    public var verifiesPeer: Bool
    /// The application protocols offered or accepted, in order of preference
    /// (ALPN: `http/1.1`); empty offers none.
    public var applicationProtocols: [String]
    /// How long a handshake may take before it fails with
    /// `EventLoopError.Code.timedOut`.
    public var handshakeTimeout: Duration

    /// A client: the system's CAs, verification on, `http/1.1` offered, a 10 s handshake.
    public static func client(caFile: String? = nil, verifiesPeer: Bool = true,
                              applicationProtocols: [String] = ["http/1.1"],
                              handshakeTimeout: Duration = .seconds(10)) -> TLSConfiguration {
        TLSConfiguration(role: .client, caFile: caFile, verifiesPeer: verifiesPeer,
                         applicationProtocols: applicationProtocols, handshakeTimeout: handshakeTimeout)
    }

    /// A server presenting `certificateChain` with `privateKey` (PEM files),
    /// accepting `http/1.1`, a 10 s handshake.
    public static func server(certificateChain: String, privateKey: String,
                              applicationProtocols: [String] = ["http/1.1"],
                              handshakeTimeout: Duration = .seconds(10)) -> TLSConfiguration {
        TLSConfiguration(role: .server(certificateChain: certificateChain, privateKey: privateKey), caFile: nil,
                         verifiesPeer: false, applicationProtocols: applicationProtocols, handshakeTimeout: handshakeTimeout)
    }
}

/// An OpenSSL context (`SSL_CTX`) made from a ``TLSConfiguration``: make one
/// per configuration and share it between connections and loops. A client
/// context keeps each server's last session, so the next connection to it
/// resumes instead of a full handshake.
public final class TLSContext: @unchecked Sendable {
    // Sendable: OpenSSL's SSL_CTX may be used from many threads once set up
    // (it is, here, before `init` returns, and only read after: SSL_new
    // takes its own references); the session store is behind its lock; the
    // ALPN list is immutable memory freed at deinit.

    /// The configuration it was made from.
    public let configuration: TLSConfiguration
    let context: OpaquePointer
    private let alpnList: UnsafeMutablePointer<CSSL_alpn_list>?
    private let alpnBytes: UnsafeMutableBufferPointer<UInt8>?
    private let sessions = LockedValue<[String: OpaquePointer]>([:])

    /// Makes the context.
    ///
    /// - Throws: `EventLoopError` (`.tls(.badConfiguration)`) naming the file
    ///   that does not load or the protocol list that is not one, with
    ///   OpenSSL's words.
    public init(_ configuration: TLSConfiguration) throws(EventLoopError) {
        self.configuration = configuration
        let isServer: Bool
        if case .server = configuration.role { isServer = true } else { isServer = false }
        guard let context = SSL_CTX_new(isServer ? TLS_server_method() : TLS_client_method()) else {
            throw TLSContext.failure(.badConfiguration, "SSL_CTX_new")
        }
        self.context = context
        var wire: [UInt8] = []
        for name in configuration.applicationProtocols {
            let bytes = Array(name.utf8)
            guard (1...255).contains(bytes.count) else {
                SSL_CTX_free(context)
                throw EventLoopError(.tls(.badConfiguration), operation: "ALPN", detail: "a protocol name of \(bytes.count) bytes (1...255)")
            }
            wire.append(UInt8(bytes.count))
            wire += bytes
        }
        if isServer && !wire.isEmpty {
            let bytes = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: wire.count)
            _ = bytes.initialize(from: wire)
            let list = UnsafeMutablePointer<CSSL_alpn_list>.allocate(capacity: 1)
            list.initialize(to: CSSL_alpn_list(protocols: bytes.baseAddress, length: UInt32(wire.count)))
            alpnBytes = bytes
            alpnList = list
        } else {
            alpnBytes = wire.isEmpty ? nil : {
                let bytes = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: wire.count)
                _ = bytes.initialize(from: wire)
                return bytes
            }()
            alpnList = nil
        }
        guard CSSL_context_defaults(context) == 1 else { throw TLSContext.failure(.badConfiguration, "SSL_CTX_set_min_proto_version") }
        switch configuration.role {
        case .server(let chain, let key):
            guard SSL_CTX_use_certificate_chain_file(context, chain) == 1 else {
                throw TLSContext.failure(.badConfiguration, "SSL_CTX_use_certificate_chain_file(\(chain))")
            }
            guard SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1 else {
                throw TLSContext.failure(.badConfiguration, "SSL_CTX_use_PrivateKey_file(\(key))")
            }
            guard SSL_CTX_check_private_key(context) == 1 else {
                throw TLSContext.failure(.badConfiguration, "SSL_CTX_check_private_key(\(key))")
            }
            if let alpnList { CSSL_set_server_alpn(context, alpnList) }
            CSSL_enable_server_sessions(context)
        case .client:
            if let caFile = configuration.caFile {
                guard SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
                    throw TLSContext.failure(.badConfiguration, "SSL_CTX_load_verify_locations(\(caFile))")
                }
            } else {
                SSL_CTX_set_default_verify_paths(context)
            }
            SSL_CTX_set_verify(context, configuration.verifiesPeer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nil)
            CSSL_enable_client_sessions(context, Unmanaged.passUnretained(self).toOpaque(), tlsStoreSession)
        }
    }

    deinit {
        SSL_CTX_free(context)
        for session in sessions.withLock({ Array($0.values) }) { SSL_SESSION_free(session) }
        alpnList?.deallocate()
        alpnBytes?.deallocate()
    }

    /// The client's ALPN offer in wire format, if any.
    var clientProtocols: UnsafeMutableBufferPointer<UInt8>? { alpnList == nil ? alpnBytes : nil }

    /// The last session with `key` (a server's host and port), referenced for the caller.
    func session(for key: String) -> OpaquePointer? {
        sessions.withLock { sessions in
            guard let session = sessions[key] else { return nil }
            SSL_SESSION_up_ref(session)
            return session
        }
    }

    func store(_ session: OpaquePointer, for key: String) {
        let old = sessions.withLock { sessions in
            defer { sessions[key] = session }
            return sessions[key]
        }
        if let old { SSL_SESSION_free(old) }
    }

    /// An error with `reason` naming `operation`, with OpenSSL's queued words (the queue emptied).
    static func failure(_ reason: EventLoopError.TLSFailure, _ operation: String, detail: String? = nil) -> EventLoopError {
        EventLoopError(.tls(reason), operation: operation, detail: detail ?? openSSLErrors())
    }

    /// OpenSSL's queued errors, in words, the queue emptied; nil if none.
    static func openSSLErrors() -> String? {
        var words: [String] = []
        while case let code = ERR_get_error(), code != 0 {
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            words.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return words.isEmpty ? nil : words.joined(separator: "; ")
    }
}

/// OpenSSL's new-session callback lands here (CSSL_enable_client_sessions):
/// the session is kept, by the context, for the next connection to its server.
private let tlsStoreSession: CSSL_session_store = { owner, key, session in
    guard let owner, let key, let session else { return }
    Unmanaged<TLSContext>.fromOpaque(owner).takeUnretainedValue().store(session, for: String(cString: key))
}
