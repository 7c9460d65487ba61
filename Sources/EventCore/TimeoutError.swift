#if canImport(Glibc)
import Glibc
#endif

/// An operation ran past its ``Deadline``.
public struct TimeoutError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The timeout that expired, in seconds.
    public let seconds: Double

    /// Creates the error for a timeout of `seconds`.
    public init(seconds: Double) { self.seconds = seconds }

    public var description: String { "timed out after \(seconds) s" }
}
