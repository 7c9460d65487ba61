import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// An address the package's sockets connect to, listen on or send to: IPv4
/// or IPv6 with a port, or a Unix-domain socket (a path in the file system,
/// or a Linux abstract name).
///
/// Parses what a command line gives: `"8000"` (a bare port means 127.0.0.1,
/// as the classic poetry client does), `"127.0.0.1:8000"`, `"localhost:8000"`,
/// `"[::1]:8000"`. Host names go through `getaddrinfo`, which may block; pass
/// numeric addresses to a running event loop. Unix-domain addresses come from
/// ``unix(path:)`` and ``unix(abstract:)``.
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    /// The address family.
    public enum Family: Sendable, Hashable {
        /// IPv4 (`AF_INET`).
        case ipv4
        /// IPv6 (`AF_INET6`).
        case ipv6
        /// A Unix-domain socket (`AF_UNIX`): a path, or a Linux abstract name.
        case unix

        /// The `AF_*` constant.
        package var domain: Int32 {
            switch self {
            case .ipv4: AF_INET
            case .ipv6: AF_INET6
            case .unix: AF_UNIX
            }
        }
    }

    /// The raw `sockaddr_in` / `sockaddr_in6` bytes.
    // A sockaddr_in6 holds either family (a sockaddr_in is its first 16
    // bytes): 28 bytes, where sockaddr_storage would be 128 in every
    // AsyncSocket (its peer) and every copy.
    private var storage: sockaddr_in6
    /// A Unix-domain address's `sun_path` bytes, as many as are used (a
    /// leading 0 for an abstract name; empty for an unnamed socket); empty
    /// for IP.
    private var unixPath: [UInt8] = []
    /// IPv4, IPv6 or Unix.
    public let family: Family

    /// The port number (0 for a Unix-domain address, where setting it does nothing).
    /// (`sin_port` and `sin6_port` sit at the same offset.)
    public var port: UInt16 {
        get { family == .unix ? 0 : UInt16(bigEndian: storage.sin6_port) }
        set { if family != .unix { storage.sin6_port = newValue.bigEndian } }
    }

    /// The longest path (or abstract name, counting its leading 0) a
    /// Unix-domain address holds: `sun_path`'s 108 bytes less a path's
    /// terminating 0.
    public static let maximumUnixPathLength = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// A Unix-domain socket at `path` in the file system.
    ///
    /// - Throws: ``EventLoopError`` (``EventLoopError/Code/invalidAddress``)
    ///   naming the path: empty, holding a NUL byte, or longer than
    ///   ``maximumUnixPathLength`` bytes (the kernel's `sun_path`).
    public static func unix(path: String) throws(EventLoopError) -> SocketAddress {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty else { throw EventLoopError(.invalidAddress, detail: "an empty Unix socket path") }
        try checkUnixName(bytes, "path", path)
        return SocketAddress(unixPath: bytes)
    }

    /// A Linux abstract Unix-domain socket named `name`: no file, gone with
    /// the last socket bound to it (a leading 0 byte in `sun_path`).
    ///
    /// - Throws: ``EventLoopError`` (``EventLoopError/Code/invalidAddress``)
    ///   naming the name: holding a NUL byte or too long.
    public static func unix(abstract name: String) throws(EventLoopError) -> SocketAddress {
        let bytes = [0] + Array(name.utf8)
        try checkUnixName(bytes, "abstract name", name)
        return SocketAddress(unixPath: bytes)
    }

    private static func checkUnixName(_ bytes: [UInt8], _ what: String, _ name: String) throws(EventLoopError) {
        guard !bytes.dropFirst().contains(0) else {
            throw EventLoopError(.invalidAddress, detail: "the Unix socket \(what) \"\(name.debugDescription.dropFirst().dropLast())\" holds a NUL byte")
        }
        guard bytes.count <= maximumUnixPathLength else {
            throw EventLoopError(.invalidAddress, detail: "the Unix socket \(what) \"\(name.prefix(60))...\" is \(bytes.count) bytes: at most \(maximumUnixPathLength) fit in sun_path")
        }
    }

    private init(unixPath: [UInt8]) {
        storage = sockaddr_in6()
        family = .unix
        self.unixPath = unixPath
    }

    /// A Unix-domain address's path (`"/run/app.sock"`), or its abstract
    /// name after an `@` (`"@app"`, as `ss` shows it), or `""` for an
    /// unnamed socket (a client that did not bind); nil for IP.
    public var unixName: String? {
        guard family == .unix else { return nil }
        if unixPath.first == 0 { return "@" + String(decoding: unixPath.dropFirst(), as: UTF8.self) }
        return String(decoding: unixPath, as: UTF8.self)
    }

    /// A Unix-domain address's path in the file system; nil for an abstract
    /// or unnamed one and for IP.
    public var unixFilePath: String? {
        guard family == .unix, let first = unixPath.first, first != 0 else { return nil }
        return String(decoding: unixPath, as: UTF8.self)
    }

    /// The address without the port, `"127.0.0.1"` or `"::1"`; for a
    /// Unix-domain address, its ``unixName``.
    public var host: String {
        if family == .unix { return unixName ?? "" }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        withSockaddr { pointer, _ in
            switch family {
            case .ipv4:
                pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    var raw = address.pointee.sin_addr
                    _ = inet_ntop(AF_INET, &raw, &buffer, socklen_t(buffer.count))
                }
            case .ipv6:
                pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    var raw = address.pointee.sin6_addr
                    _ = inet_ntop(AF_INET6, &raw, &buffer, socklen_t(buffer.count))
                }
            case .unix: break
            }
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `"127.0.0.1:8000"`, `"[::1]:8000"`, `"unix:/run/app.sock"`,
    /// `"unix:@app"` (abstract) or `"unix:(unnamed)"`.
    public var description: String {
        switch family {
        case .ipv4: "\(host):\(port)"
        case .ipv6: "[\(host)]:\(port)"
        case .unix: unixPath.isEmpty ? "unix:(unnamed)" : "unix:\(host)"
        }
    }

    /// The IPv4 address `a.b.c.d` with `port`.
    ///
    /// - Throws: ``EventLoopError`` (``EventLoopError/Code/invalidAddress``) naming the host.
    public init(ipv4 host: String, port: UInt16) throws(EventLoopError) {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw Self.invalidHost(host) }
        self.init(.ipv4, copying: address)
    }

    /// The IPv6 address `host` (without brackets) with `port`.
    ///
    /// - Throws: ``EventLoopError`` (``EventLoopError/Code/invalidAddress``) naming the host.
    public init(ipv6 host: String, port: UInt16) throws(EventLoopError) {
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = port.bigEndian
        guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else { throw Self.invalidHost(host) }
        self.init(.ipv6, copying: address)
    }

    /// An address of `family` whose `sockaddr` is `address`.
    private init<Address>(_ family: Family, copying address: Address) {
        storage = sockaddr_in6()
        self.family = family
        withUnsafeBytes(of: address) { source in
            withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) }
        }
    }

    /// An address from raw `sockaddr` bytes (as `accept` or `getsockname` return them).
    public init?(_ raw: UnsafeRawPointer, length: Int) {
        guard length >= MemoryLayout<sa_family_t>.size else { return nil }
        let family = raw.load(as: sa_family_t.self)
        switch Int32(family) {
        case AF_INET where length >= MemoryLayout<sockaddr_in>.size: self.family = .ipv4
        case AF_INET6 where length >= MemoryLayout<sockaddr_in6>.size: self.family = .ipv6
        case AF_UNIX:
            // sun_path follows sun_family; a path's bytes end at its first 0
            // (the kernel may count the terminator in the length), an
            // abstract name's run to the length.
            let offset = MemoryLayout<sa_family_t>.size
            var bytes = Array(UnsafeRawBufferPointer(start: raw + offset, count: min(max(length - offset, 0), SocketAddress.maximumUnixPathLength + 1)))
            if let first = bytes.first, first != 0, let end = bytes.firstIndex(of: 0) { bytes.removeSubrange(end...) }
            self = SocketAddress(unixPath: bytes)
            return
        default: return nil
        }
        storage = sockaddr_in6()
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: min(length, MemoryLayout<sockaddr_in6>.size))) }
    }

    /// Parses `"PORT"`, `"HOST:PORT"` or `"[IPV6]:PORT"`; a bare port or an
    /// empty host means `defaultHost` (127.0.0.1 unless given).
    ///
    /// - Throws: ``EventLoopError`` (``EventLoopError/Code/invalidAddress``)
    ///   naming what was wrong: the port, the host, or the form.
    public init(parsing text: String, defaultHost: String = "127.0.0.1") throws(EventLoopError) {
        let malformed = EventLoopError(.invalidAddress, detail: "\"\(text)\" is not an address: expected PORT, HOST:PORT or [IPV6]:PORT")
        let host: String
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw malformed }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw malformed }
            portText = rest.dropFirst()
        } else if let colon = text.lastIndex(of: ":") {
            let before = text[..<colon]
            guard !before.contains(":") else { throw malformed } // bare IPv6 needs brackets
            host = before.isEmpty ? defaultHost : String(before)
            portText = text[text.index(after: colon)...]
        } else {
            host = defaultHost
            portText = text[...]
        }
        guard let port = UInt16(portText), !portText.isEmpty else {
            throw EventLoopError(.invalidAddress, detail: "invalid port \"\(portText)\" in \"\(text)\": expected a number from 0 to 65535")
        }
        try self.init(host: host, port: port)
    }

    /// The address of `host` (numeric, or a name to look up) with `port`.
    ///
    /// - Throws: ``EventLoopError`` (``EventLoopError/Code/invalidAddress``)
    ///   if the name does not resolve.
    public init(host: String, port: UInt16) throws(EventLoopError) {
        if let address = try? SocketAddress(ipv4: host, port: port) {
            self = address
        } else if let address = try? SocketAddress(ipv6: host, port: port) {
            self = address
        } else {
            self = try SocketAddress.resolve(host, port: port)
        }
    }

    /// The error for a host that is neither a numeric address nor a name that resolves.
    private static func invalidHost(_ host: String) -> EventLoopError {
        EventLoopError(.invalidAddress, detail: "invalid host \"\(host)\": not a numeric address, and the name does not resolve")
    }

    private static func resolve(_ host: String, port: UInt16) throws(EventLoopError) -> SocketAddress {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result else {
            throw invalidHost(host)
        }
        defer { freeaddrinfo(result) }
        var entry: UnsafeMutablePointer<addrinfo>? = first
        var fallback: SocketAddress?
        while let current = entry {
            if let address = SocketAddress(current.pointee.ai_addr, length: Int(current.pointee.ai_addrlen)) {
                if address.family == .ipv4 { return address } // prefer IPv4, as the servers listen there by default
                fallback = fallback ?? address
            }
            entry = current.pointee.ai_next
        }
        guard let fallback else { throw invalidHost(host) }
        return fallback
    }

    /// Calls `body` with the raw `sockaddr` and its length.
    public func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> Result) rethrows -> Result {
        if family == .unix {
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: unixPath) }
            // A path counts its terminating 0 (Linux's unix(7) convention);
            // an abstract name counts exactly its bytes.
            let terminator = unixPath.first == 0 || unixPath.isEmpty ? 0 : 1
            let length = socklen_t(MemoryLayout<sa_family_t>.size + unixPath.count + terminator)
            return try withUnsafePointer(to: &address) { pointer in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, length) }
            }
        }
        var copy = storage
        let length = socklen_t(family == .ipv4 ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
        return try withUnsafePointer(to: &copy) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, length) }
        }
    }

    public static func == (lhs: SocketAddress, rhs: SocketAddress) -> Bool {
        lhs.family == rhs.family && lhs.port == rhs.port && lhs.unixPath == rhs.unixPath && lhs.host == rhs.host
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(family)
        hasher.combine(port)
        hasher.combine(unixPath)
        hasher.combine(host)
    }
}
