import EventCore
#if canImport(Glibc)
import Glibc
#endif

/// Where crawler processes share a crawl: `redis://[[USER]:PASSWORD@]HOST[:PORT][/PREFIX]`
/// (port 6379 and prefix `crawler` when left out), or `rediss://...` for
/// Redis over TLS (its `tls-port`; the certificate checked against HOST). Every key of the crawl
/// starts with `{PREFIX}:` - in braces, Redis Cluster's hash tag, so a
/// crawl's keys live in one slot and its scripts may touch them all.
///
/// A password in the URL (percent-encoded where it holds `@`, `:`, `/` or
/// `%`) is sent with `AUTH` - with a user, Redis 6's ACL form; without one
/// in the URL, the `REDISCLI_AUTH` environment variable's, as `redis-cli`
/// takes it. The password is never printed: the description leaves the
/// credentials out.
public struct FrontierAddress: Sendable, CustomStringConvertible {
    /// Redis's host: a name, an IPv4 address or an IPv6 one (in brackets in the URL).
    public var host: String
    /// Redis's port (6379 unless given).
    public var port: UInt16
    /// What every key of the crawl starts with, in braces (`crawler` unless given).
    public var prefix: String
    /// The ACL user, if the URL names one.
    public var user: String?
    /// The password, from the URL or `REDISCLI_AUTH`; never printed.
    public var password: String?
    /// Whether Redis is spoken over TLS (`rediss://`).
    public var usesTLS = false

    /// Why a frontier URL was refused.
    public struct ParseError: Error, CustomStringConvertible {
        /// The URL as given, its password masked.
        public let text: String
        /// What is wrong with it.
        public let reason: String
        /// The error in a sentence, with the expected form.
        public var description: String {
            "invalid frontier \"\(text)\": \(reason) (expected redis[s]://[[USER]:PASSWORD@]HOST:PORT[/PREFIX])"
        }
    }

    /// Parses `redis://[[USER]:PASSWORD@]HOST[:PORT][/PREFIX]`; with no
    /// password in it, takes `environment["REDISCLI_AUTH"]` if set.
    ///
    /// - Throws: ``ParseError`` naming the URL (its password masked) and what is wrong with it.
    public init(_ text: String, environment: [String: String] = [:]) throws(ParseError) {
        let shown = FrontierAddress.masked(text)
        usesTLS = text.hasPrefix("rediss://")
        guard text.hasPrefix("redis://") || usesTLS else { throw ParseError(text: shown, reason: "not a redis:// or rediss:// URL") }
        var rest = Substring(text.dropFirst(usesTLS ? "rediss://".count : "redis://".count))
        var prefix = "crawler"
        if let slash = rest.firstIndex(of: "/") {
            prefix = String(rest[rest.index(after: slash)...])
            rest = rest[..<slash]
            guard !prefix.isEmpty, prefix.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.:".contains($0)) }) else {
                throw ParseError(text: shown, reason: "the prefix must be letters, digits and - _ . :")
            }
        }
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            guard let colon = credentials.firstIndex(of: ":") else {
                throw ParseError(text: shown, reason: "a user without a password (the form is USER:PASSWORD@, or :PASSWORD@)")
            }
            guard let user = FrontierAddress.percentDecoded(credentials[..<colon]),
                  let password = FrontierAddress.percentDecoded(credentials[credentials.index(after: colon)...]) else {
                throw ParseError(text: shown, reason: "a bad percent-encoding in the credentials")
            }
            guard !password.isEmpty else { throw ParseError(text: shown, reason: "an empty password") }
            self.user = user.isEmpty ? nil : user
            self.password = password
        } else {
            user = nil
            password = environment["REDISCLI_AUTH"].flatMap { $0.isEmpty ? nil : $0 }
        }
        var host = rest
        var port: UInt16 = 6379
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw ParseError(text: shown, reason: "no ] after an IPv6 address") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let value = UInt16(after.dropFirst()), value > 0 else { throw ParseError(text: shown, reason: "invalid port") }
                port = value
            } else if !after.isEmpty {
                throw ParseError(text: shown, reason: "unexpected text after the address")
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            guard let value = UInt16(rest[rest.index(after: colon)...]), value > 0 else { throw ParseError(text: shown, reason: "invalid port") }
            port = value
        }
        guard !host.isEmpty else { throw ParseError(text: shown, reason: "no host") }
        guard !host.contains(where: { $0 == ":" || $0 == "@" || $0.isWhitespace }) || rest.hasPrefix("[") else {
            throw ParseError(text: shown, reason: "an invalid host")
        }
        self.host = String(host)
        self.port = port
        self.prefix = prefix
    }

    /// The frontier as a URL, port and prefix spelled out - with the user,
    /// if any, never the password.
    public var description: String {
        let who = user.map { "\($0)@" } ?? ""
        return "redis\(usesTLS ? "s" : "")://\(who)\(host.contains(":") ? "[\(host)]" : host):\(port)/\(prefix)"
    }

    /// `text` with the password of its credentials replaced by `***`, for messages.
    static func masked(_ text: String) -> String {
        let scheme = text.hasPrefix("rediss://") ? "rediss://" : "redis://"
        guard text.hasPrefix(scheme) else { return text }
        let rest = text.dropFirst(scheme.count)
        let authority = rest.prefix { $0 != "/" }
        guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else { return text }
        return scheme + authority[...colon] + "***" + rest[at...]
    }

    /// `text` with its `%XX` escapes decoded; nil for a bad escape or invalid UTF-8.
    private static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var utf8 = text.utf8.makeIterator()
        while let byte = utf8.next() {
            guard byte == UInt8(ascii: "%") else { bytes.append(byte); continue }
            guard let high = utf8.next().flatMap(hexValue), let low = utf8.next().flatMap(hexValue) else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
