import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Why an ``EventLoopGroup`` could not do what was asked.
public enum EventLoopGroupError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The group was shut down already.
    case alreadyShutDown
    /// Loops still had work when the graceful shutdown's time was up, and were stopped.
    case timedOut(seconds: Double, loopsStopped: Int)

    public var description: String {
        switch self {
        case .alreadyShutDown: "the event loop group was shut down already"
        case .timedOut(let seconds, let stopped):
            "\(stopped) loop\(stopped == 1 ? "" : "s") still had work after \(seconds) s and \(stopped == 1 ? "was" : "were") stopped"
        }
    }
}
