#if canImport(Glibc)
import Glibc
#endif

/// A loop's life, written once for both loops: open, running on a thread,
/// closing, closed - one state, where each loop once kept booleans of its
/// own that could disagree. It is the running scope (the thread mark the
/// executor reads, ``CurrentLoop``), the thread check of every entry point,
/// the teardown's order and the trap for a use after it. Each loop supplies
/// only what is its own: how it polls, and what its watches are.
///
/// Loop thread only (the checks it makes are how that is enforced).
///
/// Not for apps: an SPI (`@_spi(EventLoops) import EventCore`), public only
/// so that the loops inline its checks - every entry point of a loop makes
/// one, and a call into another module cost a libev once timer 9 % in the
/// benchmarks.
@_spi(EventLoops)
public final class LoopLifecycle {
    /// Where a loop is in its life.
    public enum State: Equatable {
        /// Made, not running now.
        case open
        /// Inside `run` on `thread`; `depth` runs deep (libev allows a run
        /// inside a callback).
        case running(thread: pthread_t, depth: Int)
        /// Being closed: first `draining` (pending awaits fail, queued work
        /// and dropped watches' releases run - user code, which may still
        /// use the loop), then not (the kernel state is being released;
        /// libev's cleanup watchers run, and may only stop watchers).
        case closing(draining: Bool)
        /// Closed: every use traps.
        case closed

        public static func == (lhs: State, rhs: State) -> Bool {
            switch (lhs, rhs) {
            case (.open, .open), (.closed, .closed): true
            case (.running(let a, let x), .running(let b, let y)): pthread_equal(a, b) != 0 && x == y
            case (.closing(let a), .closing(let b)): a == b
            default: false
            }
        }
    }

    /// The loop's name in messages: `EV`, `Epoll`.
    private let name: StaticString
    /// The object that marks the running thread: the loop's executor, which
    /// owns this lifecycle (set once, by the executor's initializer).
    package unowned(unsafe) var executor: AnyObject!
    /// Where the loop is.
    public internal(set) var state = State.open
    /// The loop's monitor, once made (weak: the monitor keeps this lifecycle).
    package weak var monitor: LoopMonitor?

    /// A lifecycle for a loop named `name` (`EV`, `Epoll`) in messages.
    package init(name: StaticString) {
        self.name = name
    }

    /// Whether the loop is closing or closed.
    package var isClosingOrClosed: Bool {
        switch state {
        case .closing, .closed: true
        default: false
        }
    }

    /// Whether some thread runs the loop now.
    package var isRunning: Bool {
        if case .running = state { return true }
        return false
    }

    // MARK: the checks

    /// Traps when called from a thread other than the one running the loop,
    /// in release builds too: a loop is not thread-safe, and one used from two
    /// threads at once crashes somewhere inside it, far from the cause. (A
    /// load of the running thread and a compare; see the README for its cost.)
    @inlinable @inline(__always)
    public func checkThread(_ function: StaticString) {
        if case .running(let thread, _) = state, thread != pthread_self() {
            wrongThread(function, running: thread)
        }
    }

    /// ``checkThread(_:)``, and traps once the loop is closed - or, unless
    /// `whileReleasing`, while its kernel state is being released.
    @inlinable @inline(__always)
    public func checkUsable(_ function: StaticString, whileReleasing: Bool = false) {
        switch state {
        case .open: return
        case .running(let thread, _):
            if thread != pthread_self() { wrongThread(function, running: thread) }
        case .closing(let draining):
            if !draining && !whileReleasing { useWhileReleasing(function) }
        case .closed:
            useAfterClose(function)
        }
    }

    @usableFromInline @inline(never)
    func wrongThread(_ function: StaticString, running: pthread_t) -> Never {
        misuse("""
            \(name): \(function) was called on thread \(pthread_self()) while thread \(running) is running this loop. \
            A loop and its watchers belong to the thread that runs them; from other threads use \
            loop.executor.execute { } (or, on libev, an AsyncWatcher's sender).
            """)
    }

    @usableFromInline @inline(never)
    func useWhileReleasing(_ function: StaticString) -> Never {
        misuse("\(name): \(function) was called while its loop is being closed (from a cleanup callback); only stopping a watcher is allowed then.")
    }

    @usableFromInline @inline(never)
    func useAfterClose(_ function: StaticString) -> Never {
        misuse("\(name): \(function) was called after its loop was closed (close(), or the last reference to the loop was dropped).")
    }

    // MARK: the running scope

    /// Runs `body` as the loop's run: the state says which thread runs it
    /// (one run inside another keeps the thread, one deeper), and the
    /// executor knows it is current there.
    ///
    /// - Precondition: the loop is open, and not running on another thread.
    @inline(__always)
    package func run<Result>(_ function: StaticString, _ body: () -> Result) -> Result {
        checkUsable(function)
        let outer = state
        let depth: Int
        if case .running(_, let outerDepth) = outer { depth = outerDepth + 1 } else { depth = 1 }
        state = .running(thread: pthread_self(), depth: depth)
        // The monitor counts the time between the outermost run's start
        // and end (a run inside a callback is part of that callback).
        if depth == 1 { monitor?.runStarted() }
        defer {
            if depth == 1 { monitor?.runEnded() }
            state = outer
        }
        return CurrentLoop.with(executor, body)
    }

    /// Traps unless the loop is open and not running: what closing it, and
    /// running a task on it, require.
    package func checkNotRunning(_ function: StaticString, _ advice: String) {
        if isRunning { misuse("\(name): \(function) was called while the loop runs; \(advice)") }
    }

    // MARK: closing

    /// Closes the loop, once: the state is closing, then `drain` runs with
    /// the loop current (the executor fails pending awaits, runs the work it
    /// accepted and lets `dropWatches` let the watches go, round after
    /// round), then `release` frees the kernel state, then the state is
    /// closed. Harmless when closed or closing already.
    ///
    /// - Precondition: the loop is not running (a trap with a message otherwise).
    package func close(_ function: StaticString, drain: () -> Void, release: () -> Void) {
        switch state {
        case .closing, .closed: return
        case .running: checkNotRunning(function, "break out of run() (stop()) first")
        case .open: break
        }
        state = .closing(draining: true)
        CurrentLoop.with(executor, drain)
        state = .closing(draining: false)
        CurrentLoop.with(executor, release)
        state = .closed
    }
}
