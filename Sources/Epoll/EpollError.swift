import CLinux
import EventCore
import Glibc

/// Why the epoll loop refused a request.
public enum EpollError: EventLoopError, Equatable, CustomStringConvertible {
    /// A signal number outside 1..<65, or `SIGKILL` / `SIGSTOP`.
    case invalidSignal(Int32)
    /// A time interval was NaN or infinite.
    case invalidInterval(parameter: String, value: Double)
    /// The loop has been destroyed and takes no more work.
    case loopClosed

    /// Whether this is ``loopClosed``.
    public var isLoopClosed: Bool { self == .loopClosed }

    public var description: String {
        switch self {
        case .invalidSignal(let number): "signal \(number) cannot be watched: it must be in 1..<\(signalNumberLimit) and not SIGKILL or SIGSTOP"
        case .invalidInterval(let parameter, let value): "\(parameter) must be a finite number of seconds; got \(value)"
        case .loopClosed: "the loop has been destroyed and takes no more work"
        }
    }
}
