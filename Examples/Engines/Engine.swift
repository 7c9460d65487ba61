/// How a server or a client of the examples does its io: the one list of
/// engines the slow poetry server, the HTTP server and the web crawler share,
/// in one order and one spelling. Each takes the ones it has (the crawler
/// has no thread-per-connection engine, the HTTP server no one-at-a-time
/// one) and names the others in its usage error.
public enum Engine: String, CaseIterable, Sendable, CustomStringConvertible {
    /// One client at a time, blocking sockets, as the classic slowpoetry.py.
    case blocking
    /// A thread per connection, blocking sockets.
    case threads
    /// libev: readiness callbacks and timers.
    case libev
    /// The hand-written epoll loop: the same callback code, through `EventLoop`.
    case epoll
    /// async/await tasks on libev's loop, its executor their executor.
    case async
    /// The same async/await code on the hand-written epoll loop.
    case asyncEpoll = "async-epoll"

    public var description: String { rawValue }

    /// The loop an evented engine runs on; nil for blocking and threads.
    public var loop: LoopChoice? {
        switch self {
        case .blocking, .threads: nil
        case .libev, .async: .libev
        case .epoll, .asyncEpoll: .epoll
        }
    }

    /// Whether the engine's code is async/await tasks.
    public var isAsync: Bool { self == .async || self == .asyncEpoll }

    /// The engines among `engines`, as a usage message lists them: "libev, epoll, async or async-epoll".
    public static func list(_ engines: [Engine]) -> String {
        let names = engines.map(\.rawValue)
        return names.count <= 1 ? names.joined() : names.dropLast().joined(separator: ", ") + " or " + names.last!
    }
}

/// The two event loops of the package.
public enum LoopChoice: String, CaseIterable, Sendable {
    /// libev, through the EV module.
    case libev
    /// The hand-written epoll loop of the Epoll module.
    case epoll
}
