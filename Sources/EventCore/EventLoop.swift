#if canImport(Glibc)
import Glibc
#endif

/// An event loop as the package's servers and clients use it: readiness
/// callbacks, timers, cross-thread submission and an executor. Both loops -
/// libev's `EV.Loop` and the hand-written `Epoll.EpollLoop` - conform, so the
/// HTTP server and the web crawler run unchanged on either, and a comparison
/// changes only the loop.
///
/// A loop belongs to the thread that runs it: call these methods there.
public protocol EventLoop: AnyObject, SendableMetatype {
    /// The loop's `Sendable` executor: cross-thread submission, tasks, awaits.
    associatedtype Executor: AsyncEventLoop & TaskExecutor & CrossThreadSubmitting

    /// The loop's executor.
    var executor: Executor { get }

    /// The loop's readiness watch (a concrete type, so that a server keeping
    /// one per connection stores a reference, not an existential).
    associatedtype Watch: IOWatching

    /// Calls `callback` with what is ready (``Interest/read``, ``Interest/write``,
    /// ``Interest/error``) whenever `fd` is ready for `interest`, until cancelled.
    ///
    /// - Throws: if `fd` is not open.
    func watchReadiness(_ fd: Int32, _ interest: Interest, _ callback: @escaping (Interest) -> Void) throws -> Watch

    /// Calls `handler.ready(_:)` with what is ready whenever `fd` is ready for
    /// `interest`, until cancelled: ``watchReadiness(_:_:_:)`` without a
    /// closure, for servers that keep thousands of watches (no closure
    /// context per watch: the handler is usually the connection itself).
    ///
    /// The watch holds `handler` strongly, as a closure capturing it would:
    /// a handler that keeps its watch makes a cycle that ends when the
    /// handler drops the watch after cancelling it (or the loop closes).
    ///
    /// - Throws: if `fd` is not open.
    func watchReadiness(_ fd: Int32, _ interest: Interest, handler: any ReadinessHandler) throws -> Watch

    /// Calls `callback` once, `seconds` from now, unless cancelled first.
    ///
    /// "Now" is the loop's idea of it: for libev, the time it last woke up
    /// (libev's `ev_now`, which callbacks see); the epoll loop reads the clock.
    func schedule(after seconds: Double, _ callback: @escaping () -> Void) -> any Cancellable

    /// Calls `callback` once when the monotonic clock (``monotonicNow()``)
    /// reaches `instant`, unless cancelled first: a deadline counted from
    /// the current time, whatever the loop's cached one says.
    func schedule(at instant: Double, _ callback: @escaping () -> Void) -> any Cancellable

    /// Runs the loop until ``stop()`` (asyncio's `run_forever`).
    func runForever()

    /// Makes ``runForever()`` return after the current iteration.
    func stop()

    /// Closes the loop after it has run (asyncio's `loop.close()`): pending
    /// awaits fail, queued work runs, every watch and timer is dropped with
    /// its closure - which breaks the cycle a callback capturing its loop
    /// makes - and the kernel state is released. Harmless twice.
    func close()

    /// Gives the loop its own kernel state in a forked child; call it there
    /// before running the loop.
    func reinitializeAfterFork() throws

    /// Runs `body` as a task on the loop, on the current thread, until it
    /// returns (asyncio's `run`); the loop keeps running meanwhile.
    func run<T: Sendable>(_ body: sending @escaping (Executor) async throws -> T) throws -> T
}

/// A readiness watch of an ``EventLoop``.
public protocol IOWatching: AnyObject {
    /// What the watch waits for; empty pauses it. Setting it takes effect at
    /// once; a watch that cannot be resumed reports it with ``Interest/error``.
    var interest: Interest { get set }
    /// Sets ``interest``, throwing if the watch cannot be resumed (its
    /// descriptor was closed meanwhile, say).
    func setInterest(_ interest: Interest) throws
    /// Stops the watch for good; harmless when stopped already.
    func cancel()
}

/// What a readiness watch calls, for ``EventLoop/watchReadiness(_:_:handler:)``.
public protocol ReadinessHandler: AnyObject {
    /// Called on the loop's thread with what is ready (``Interest/read``,
    /// ``Interest/write``, ``Interest/error``).
    func ready(_ events: Interest)
}

/// Something that can be cancelled once.
public protocol Cancellable: AnyObject {
    /// Cancels; harmless when done or cancelled already.
    func cancel()
}

/// An executor that takes closures from any thread.
public protocol CrossThreadSubmitting: Sendable {
    /// Runs `work` on the loop's thread, in order; throws if the loop is gone.
    func submit(_ work: @escaping @Sendable () -> Void) throws
}

/// An ``EventLoop`` running on a thread of its own until stopped: one per
/// core for servers (`--workers N`), and for tests.
public final class EventLoopThread<Loop: EventLoop>: Sendable {
    /// The loop's executor; usable from any thread.
    public let executor: Loop.Executor
    private let thread: PlainThread
    private let stopper: @Sendable () -> Void

    /// Starts a thread that makes a loop with `make`, calls `setUp` with it,
    /// then runs it until ``stop()`` and closes it (see ``EventLoop/close()``).
    ///
    /// - Throws: what `make` throws.
    public init(_ make: @escaping @Sendable () throws -> Loop,
                setUp: @escaping @Sendable (Loop) -> Void = { _ in }) throws {
        let handshake = LockedValue<Result<(Loop.Executor, LoopBox<Loop>), any Error>?>(nil)
        let thread = try PlainThread {
            do {
                let loop = try make()
                setUp(loop)
                handshake.withLock { $0 = .success((loop.executor, LoopBox(loop))) }
                loop.runForever()
                loop.close()
            } catch {
                handshake.withLock { $0 = .failure(error) }
            }
        }
        var outcome: Result<(Loop.Executor, LoopBox<Loop>), any Error>?
        while outcome == nil {
            outcome = handshake.withLock { $0 }
            if outcome == nil { usleep(100) }
        }
        switch outcome! {
        case .success(let (executor, box)):
            self.executor = executor
            self.thread = thread
            // The box is used only on the loop's thread, inside the submitted job.
            stopper = { [executor] in try? executor.submit { box.loop?.stop() } }
        case .failure(let error):
            thread.join()
            throw error
        }
    }

    /// Asks the loop to stop after its current iteration; returns at once.
    public func stop() { stopper() }

    /// Waits until the loop's thread has ended (after ``stop()``); harmless twice.
    public func join() {
        thread.join()
    }

    deinit {
        stop()
        join()
    }
}

/// The loop of an ``EventLoopThread``, reached only on the loop's own thread.
final class LoopBox<Loop: AnyObject>: @unchecked Sendable {
    // Sendable because `loop` is read only inside jobs the loop itself runs
    // on its thread; the weak reference ends with the loop.
    weak var loop: Loop?
    init(_ loop: Loop) { self.loop = loop }
}
