import CLibev
import EventCore

/// Which ``Loop/run(_:)-(RunMode)`` calls ``Loop/break(_:)`` ends.
public enum BreakMode: Sendable {
    /// The innermost `run` returns after this iteration. `EVBREAK_ONE`.
    case one
    /// Every nested `run` returns. `EVBREAK_ALL`.
    case all
    /// Cancels an earlier break that has not taken effect yet. `EVBREAK_CANCEL`.
    case cancel

    var how: Int32 {
        switch self {
        case .one: Int32(EVBREAK_ONE)
        case .all: Int32(EVBREAK_ALL)
        case .cancel: Int32(EVBREAK_CANCEL)
        }
    }
}
