/// The result of a call on a non-blocking descriptor: a value, or "try again
/// when the descriptor is ready" (`EAGAIN` / `EWOULDBLOCK`, and `EINPROGRESS`
/// for `connect`).
public enum IOResult<Value> {
    /// The call did its work and returned `Value`.
    case processed(Value)
    /// The call would have blocked; wait for readiness and call again.
    case wouldBlock
}

extension IOResult: Sendable where Value: Sendable {}
extension IOResult: Equatable where Value: Equatable {}
