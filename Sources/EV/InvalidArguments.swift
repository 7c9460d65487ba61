import EventCore

/// The ``/EventCore/EventLoopError``s the wrapper throws for arguments libev
/// would abort on (Debian builds libev with its assertions) or misuse
/// silently; each names the argument.
enum InvalidArgument {
    /// A signal number outside 1..<65, which libev cannot feed.
    static func signal(_ number: Int32, operation: String) -> EventLoopError {
        EventLoopError(.invalidArgument, operation: operation, detail: "signal \(number) is not in 1..<\(signalNumberLimit)")
    }

    /// A duration that must not be negative, and was.
    static func negative(_ parameter: String, _ value: Duration, operation: String) -> EventLoopError {
        EventLoopError(.invalidArgument, operation: operation, detail: "\(parameter) must not be negative; got \(LoopTime.describe(value))")
    }

    /// The signal is watched by another loop.
    static func signalOwned(_ number: Int32) -> EventLoopError {
        EventLoopError(.signalOwnedByAnotherLoop, operation: "signal", detail: "signal \(number)")
    }
}

extension Duration {
    /// A libev interval (`ev_tstamp`): the duration in seconds, never negative.
    @inline(__always)
    var libevInterval: Double { LoopTime.delay(self) }
}
