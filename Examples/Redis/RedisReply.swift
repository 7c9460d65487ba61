/// A reply from Redis, as ``RedisReader`` builds it from hiredis's reader.
public enum RedisReply: Equatable, Sendable, CustomStringConvertible {
    /// A bulk string (binary safe).
    case string([UInt8])
    /// A status reply, such as `OK`.
    case status(String)
    /// An integer reply.
    case integer(Int)
    /// An array (multi-bulk) reply; its elements may be of any kind.
    case array([RedisReply])
    /// A nil bulk string or array.
    case null
    /// An error reply inside an array (a top-level error reply fails the
    /// command with ``RedisError/Kind/server`` instead).
    case error(String)

    /// A string or status reply as text (UTF-8; invalid bytes are replaced).
    public var text: String? {
        switch self {
        case .string(let bytes): String(decoding: bytes, as: UTF8.self)
        case .status(let text): text
        default: nil
        }
    }

    /// An integer reply, or a string reply that spells an integer.
    public var integer: Int? {
        switch self {
        case .integer(let value): value
        case .string: text.flatMap { Int($0) }
        default: nil
        }
    }

    /// The elements of an array reply.
    public var elements: [RedisReply]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// The reply as `redis-cli` prints it, roughly: strings quoted, `(nil)`, `(integer) 1`.
    public var description: String {
        switch self {
        case .string: "\"\(text!)\""
        case .status(let text): text
        case .integer(let value): "(integer) \(value)"
        case .array(let elements): "[" + elements.map(\.description).joined(separator: ", ") + "]"
        case .null: "(nil)"
        case .error(let message): "(error) \(message)"
        }
    }
}

/// Why a Redis command or connection failed; the description names the server.
public struct RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What failed.
    public enum Kind: Sendable, Equatable {
        /// The connection could not be made (refused, unreachable, timed out).
        case connect
        /// The connection ended (the server closed it, or an I/O error); the
        /// commands still waiting for replies fail with this.
        case disconnected
        /// The server answered with an error reply (`ERR ...`, `NOSCRIPT ...`).
        case server
        /// The client was closed, or is closing, before the command was sent.
        case closed
        /// Replies were due and nothing came within the client's reply timeout.
        case timeout
        /// The server wants a password (`NOAUTH`), or refused the one given
        /// (`WRONGPASS`, an `AUTH` error).
        case authentication
        /// The server broke Redis's protocol: bytes that are not a reply, a
        /// reply nobody asked for, or a reply over ``RedisLimits``. The
        /// connection is ended; no byte of the server's can end the process.
        case protocolViolation
    }

    /// What failed.
    public let kind: Kind
    /// The server, as `redis://HOST:PORT`.
    public let server: String
    /// What happened, in hiredis's or the server's words.
    public let message: String

    /// An error of `kind` from `server` (`redis://HOST:PORT`), in `message`'s words.
    public init(_ kind: Kind, server: String, _ message: String) {
        self.kind = kind
        self.server = server
        self.message = message
    }

    /// The error in a sentence that names the server.
    public var description: String {
        switch kind {
        case .connect: "cannot connect to \(server): \(message)"
        case .disconnected: "lost the connection to \(server): \(message)"
        case .server: "\(server) answered: \(message)"
        case .closed: "the connection to \(server) is closed: \(message)"
        case .timeout: "\(server) stopped answering: \(message)"
        case .authentication:
            "\(server) did not let us in: \(message) (a password goes in the URL, redis://:PASSWORD@HOST:PORT, or in REDISCLI_AUTH)"
        case .protocolViolation: "\(server) broke Redis's protocol: \(message)"
        }
    }
}
