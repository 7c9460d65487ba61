/// What the loops' error enums (`EV.EVError`, `Epoll.EpollError`) have in
/// common, for code written for either loop: whether an error says the loop
/// has been destroyed.
public protocol EventLoopError: Error, Sendable {
    /// Whether the error says the loop has been destroyed and takes no more work.
    var isLoopClosed: Bool { get }
}

/// Whether `error` says its loop - either loop - has been destroyed.
public func isLoopClosed(_ error: any Error) -> Bool {
    (error as? any EventLoopError)?.isLoopClosed == true
}
