import CLibev
import EventCore

/// How long ``Loop/run(_:)-(RunMode)`` runs.
public enum RunMode: Sendable {
    /// Until no active watcher keeps the loop alive, or ``Loop/break(_:)``. `ev_run(loop, 0)`.
    case untilDone
    /// Wait for events once (blocking if needed), handle them, return. `EVRUN_ONCE`.
    case once
    /// Handle what is ready now without waiting, return. `EVRUN_NOWAIT`.
    case noWait

    var flags: Int32 {
        switch self {
        case .untilDone: 0
        case .once: Int32(EVRUN_ONCE)
        case .noWait: Int32(EVRUN_NOWAIT)
        }
    }
}
