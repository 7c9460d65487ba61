import EventCore

/// Why the EV wrapper refused a request.
///
/// Each case is a bad input that libev itself would abort on (Debian builds
/// libev with assertions on) or silently misbehave with; the wrapper checks it
/// first and throws instead.
public enum EVError: EventLoopError, Equatable, CustomStringConvertible {
    /// The descriptor is not open (`fstat` failed), so libev cannot watch it.
    case badDescriptor(Int32, SystemCallError)
    /// The descriptor is the loop's own epoll instance: the kernel refuses to
    /// watch an epoll instance with itself, and libev aborts on the refusal.
    case ownBackendDescriptor(Int32)
    /// The descriptor is an epoll instance that watches this loop's own,
    /// directly or through others (another loop watching or embedding this
    /// one), or nests them too deep: the kernel refuses the cycle (`ELOOP`),
    /// and libev aborts on the refusal.
    case epollCycle(Int32)

    /// A time interval was NaN, infinite or negative where libev needs a finite, non-negative one.
    case invalidInterval(parameter: String, value: Double)
    /// A signal number outside 1..<NSIG, or `SIGKILL` / `SIGSTOP`, which cannot be caught.
    case invalidSignal(Int32)
    /// The signal is already watched by another loop; libev lets one loop own each signal.
    case signalOwnedByAnotherLoop(Int32)
    /// Child watchers work only on the default loop (``Loop/defaultLoop(flags:backends:)``), which owns `SIGCHLD`.
    case childWatcherNeedsDefaultLoop
    /// The loop to embed does not use an embeddable backend (see ``Backend/embeddable``).
    case notEmbeddable(Backend)
    /// A loop cannot embed itself.
    case cannotEmbedItself
    /// libev could not create a loop with these backends and flags.
    case loopCreationFailed(backends: Backend, flags: LoopFlags)
    /// The loop has been destroyed, so it takes no more work.
    case loopClosed

    /// Whether this is ``loopClosed``.
    public var isLoopClosed: Bool { self == .loopClosed }

    /// A sentence that names what was wrong.
    public var description: String {
        switch self {
        case .badDescriptor(let fd, let error):
            "descriptor \(fd) cannot be watched: it is not open (\(error))"
        case .ownBackendDescriptor(let fd):
            "descriptor \(fd) cannot be watched: it is this loop's own epoll instance"
        case .epollCycle(let fd):
            "descriptor \(fd) cannot be watched: it is an epoll instance that watches this loop (or nests too deep), a cycle the kernel refuses"

        case .invalidInterval(let parameter, let value):
            "\(parameter) must be a finite number of seconds, not negative; got \(value)"
        case .invalidSignal(let number):
            "signal \(number) cannot be watched: it must be in 1..<\(signalNumberLimit) and not SIGKILL or SIGSTOP"
        case .signalOwnedByAnotherLoop(let number):
            "signal \(number) is already watched by another loop; libev lets only one loop watch a signal"
        case .childWatcherNeedsDefaultLoop:
            "child watchers work only on the default loop (Loop.defaultLoop()), which handles SIGCHLD"
        case .notEmbeddable(let backend):
            "a loop using \(backend) cannot be embedded; embeddable backends here: \(Backend.embeddable)"
        case .cannotEmbedItself:
            "a loop cannot embed itself"
        case .loopCreationFailed(let backends, let flags):
            "libev could not create a loop with backends \(backends) (supported here: \(Backend.supported)) and flags 0x\(String(flags.rawValue, radix: 16))"
        case .loopClosed:
            "the loop has been destroyed and takes no more work"
        }
    }
}

/// Checks that `value` is a usable interval in seconds.
func validInterval(_ value: Double, _ parameter: String) throws(EVError) -> Double {
    guard value.isFinite, value >= 0 else { throw .invalidInterval(parameter: parameter, value: value) }
    return value
}
