/// The readiness a descriptor is watched for, and reported with.
public struct Interest: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Readable without blocking (`EPOLLIN`, `EV_READ`, `selectors.EVENT_READ`).
    public static let read = Interest(rawValue: 1)
    /// Writable without blocking (`EPOLLOUT`, `EV_WRITE`, `selectors.EVENT_WRITE`).
    public static let write = Interest(rawValue: 2)
    /// Reported only: the descriptor failed or was closed under the watch.
    public static let error = Interest(rawValue: 4)

    public var description: String {
        let names = [(Interest.read, "read"), (.write, "write"), (.error, "error")].filter { contains($0.0) }.map(\.1)
        return names.isEmpty ? "none" : names.joined(separator: "|")
    }
}
