import CHTTPParser
#if canImport(Glibc)
import Glibc
#endif

/// One parsed message: a request's head, or a response's head and body.
public struct HTTPMessage {
    /// The request's method (`HTTP_GET`, ...).
    public var method = HTTP_GET
    /// The request target, as sent.
    public var target: [UInt8] = []
    /// The response's status.
    public var status = 0
    public var major = 1
    public var minor = 1
    /// Whether the connection stays open after this message (`http_should_keep_alive`).
    public var keepAlive = true
    /// The header fields, in order (responses only: a server needs none but Host).
    public var headers: [(name: String, value: String)] = []
    /// The body (responses only; a server discards request bodies).
    public var body: [UInt8] = []
    /// The body's length.
    public var bodyBytes = 0
    /// `Host` fields seen.
    var hostCount = 0

    public init() {}

    /// Back to a fresh message, keeping the target's storage.
    mutating func reset() {
        method = HTTP_GET
        target.removeAll(keepingCapacity: true)
        status = 0
        major = 1
        minor = 1
        keepAlive = true
        if !headers.isEmpty { headers = [] }
        if !body.isEmpty { body = [] }
        bodyBytes = 0
        hostCount = 0
    }

    /// The first header field named `name`, ignoring case.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }
}
