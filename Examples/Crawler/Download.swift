import EV
import Epoll
import EventCore
import Glibc
import HTTP
import SlowPoetry

/// One poem's download, as every way records it: when it started and ended,
/// when each chunk arrived, the bytes, and what went wrong, if anything.
/// Times are on the monotonic clock (seconds), shared by all processes.
struct Download: Sendable {
    var address: SocketAddress
    var started = 0.0
    var finished = 0.0
    var chunks: [Chunk] = []
    var poem: [UInt8] = []
    var error: DownloadFailure?

    struct Chunk: Sendable {
        var at: Double
        var bytes: Int
    }

    init(address: SocketAddress) {
        self.address = address
    }

    /// Records `bytes` arriving now; false (and the download failed) if
    /// the poem is over `rules.maxBytes` with them.
    mutating func received(_ bytes: some Collection<UInt8>, _ rules: DownloadRules) -> Bool {
        guard poem.count + bytes.count <= rules.maxBytes else {
            finish(.tooLarge(maxBytes: rules.maxBytes))
            return false
        }
        chunks.append(Chunk(at: monotonicNow(), bytes: bytes.count))
        poem.append(contentsOf: bytes)
        return true
    }

    /// When the whole download must be over (``started`` plus the rules' timeout).
    func deadline(_ rules: DownloadRules) -> Double? {
        rules.timeout.map { started + $0.inSeconds }
    }

    /// Fails the download for its deadline.
    mutating func timedOut(_ rules: DownloadRules) {
        finish(.timedOut(after: rules.timeout))
    }

    /// Records the end of the download, with `error` if it failed.
    mutating func finish(_ error: DownloadFailure? = nil) {
        finished = monotonicNow()
        if let error, self.error == nil { self.error = error }
    }

    var duration: Double { finished - started }
}

/// What every way's downloads obey, whichever way they run.
struct DownloadRules: Sendable {
    /// The time the whole download may take, from connecting to the last byte; nil: no limit.
    var timeout: Duration?
    /// The most bytes a poem may have: a server that sends without end must
    /// not make the client's memory grow without end.
    var maxBytes: Int
    /// What the ways whose listing sends a request (busy, epoll, libev,
    /// async) send once connected: the tutorial's GET to the built-in servers
    /// (which read and drop it), nothing to a classic slow poetry server,
    /// which never reads - a request it leaves unread turns its close into a
    /// reset. The blocking listing sends nothing, nor do the ways built on it.
    var request: [UInt8]

    /// Far above any real poem (the longest built-in one is 3003 bytes).
    static let defaultMaxBytes = 16 << 20

}

/// The GET request the tutorial's non-blocking and epoll listings send.
let tutorialRequest = Array("GET / HTTP/1.0\r\nHost: localhost\r\n\r\n".utf8)

/// How each way waits while a download is in progress, for the timeline.
enum Waiting: String {
    /// In a blocking system call (`connect`, `recv`): the thread can do nothing else.
    case blocked
    /// Retrying a non-blocking call in a loop: the core is busy doing nothing.
    case spinning
    /// Suspended in the event loop, which runs the other downloads meanwhile.
    case waiting
}

/// The seven ways of the tutorial, and its async way on the other loop.
enum Way: String, CaseIterable, Sendable {
    case blocking, processes, threads, busy, epoll, libev, async
    case asyncEpoll = "async-epoll"

    /// Whether the downloads run one after another (the floor is their sum)
    /// or all at once (the floor is the slowest).
    var isSequential: Bool { self == .blocking || self == .busy }

    var waiting: Waiting {
        switch self {
        case .blocking, .processes, .threads: .blocked
        case .busy: .spinning
        case .epoll, .libev, .async, .asyncEpoll: .waiting
        }
    }

    /// One line on how the way works, for the table and the picture.
    var summary: String {
        switch self {
        case .blocking: "one after another, blocking recv"
        case .processes: "a pool of 4 processes, one download each"
        case .threads: "a thread per download, all started, then joined"
        case .busy: "non-blocking sockets retried in a loop"
        case .epoll: "hand-written epoll selector + callbacks"
        case .libev: "libev watchers + callbacks"
        case .async: "async/await tasks on the libev loop"
        case .asyncEpoll: "the same async/await tasks on the epoll loop"
        }
    }

    /// Downloads `addresses` this way.
    func run(_ addresses: [SocketAddress], _ rules: DownloadRules) -> [Download] {
        switch self {
        case .blocking: blockingWay(addresses, rules)
        case .processes: processesWay(addresses, rules)
        case .threads: threadsWay(addresses, rules)
        case .busy: busyWay(addresses, rules)
        case .epoll: epollWay(addresses, rules)
        case .libev: libevWay(addresses, rules)
        case .async: asyncWay(addresses, rules) { try Loop() }
        case .asyncEpoll: asyncWay(addresses, rules) { try EpollLoop() }
        }
    }
}

/// Why a download failed.
enum DownloadFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// A system call failed (connect refused, reset, ...); the error names it.
    case system(EventLoopError)
    /// The whole download did not end within `--timeout`.
    case timedOut(after: Duration?)
    /// The poem grew past `--max-poem-bytes`.
    case tooLarge(maxBytes: Int)
    /// The processes way's child failed, or reported this (its text).
    case child(String)

    /// The failure an error thrown during a download stands for.
    init(_ error: any Error) {
        switch error {
        case let error as EventLoopError: self = .system(error)
        case let error as DownloadFailure: self = error
        default: self = .child(String(describing: error))
        }
    }

    var description: String {
        switch self {
        case .system(let error): error.description
        case .timedOut(let timeout): "no complete poem within \(timeout.map { "\(formatSeconds($0.inSeconds)) s" } ?? "the time") (--timeout)"
        case .tooLarge(let maxBytes): "the poem is over \(maxBytes) bytes (--max-poem-bytes)"
        case .child(let text): text
        }
    }
}

/// The CPU time of this process and its waited-for children (user + system), in seconds.
func processCPUSeconds() -> Double {
    func seconds(_ who: Int32) -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(who), &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }
    return seconds(RUSAGE_SELF.rawValue) + seconds(RUSAGE_CHILDREN.rawValue)
}
