#if canImport(Glibc)
import Glibc
#endif

/// Why a text is not a usable socket address.
public enum AddressError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The port is not a number in 0...65535.
    case invalidPort(String, in: String)
    /// The host is neither a numeric address nor a name that resolves.
    case invalidHost(String)
    /// The text is not `PORT`, `HOST:PORT` or `[IPV6]:PORT`.
    case malformed(String)

    public var description: String {
        switch self {
        case .invalidPort(let port, let text): "invalid port \"\(port)\" in \"\(text)\": expected a number from 0 to 65535"
        case .invalidHost(let host): "invalid host \"\(host)\": not a numeric address, and the name does not resolve"
        case .malformed(let text): "\"\(text)\" is not an address: expected PORT, HOST:PORT or [IPV6]:PORT"
        }
    }
}
