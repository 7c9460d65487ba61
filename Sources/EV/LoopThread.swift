import CLibev
import EventCore
import Dispatch
import Glibc

/// A loop running on a thread of its own until it is stopped from outside.
///
/// The loop is created on the new thread, set up there by `setUp`, and run
/// until ``stop()``; other threads talk to it through ``executor``. Unlike a
/// plain ``Loop/run(_:)``, the loop keeps running while it has no watchers,
/// like a SwiftNIO event loop or asyncio's `run_forever`, so it is always
/// ready for submitted work.
///
/// ```swift
/// let thread = try LoopThread { loop in
///     try? loop.timer(after: 0.1, repeat: 0.1) { _ in print("tick") }
/// }
/// try thread.executor.execute { print("on the loop's thread") }
/// thread.stop()
/// thread.join()
/// ```
public final class LoopThread: Sendable {
    /// Submits work to the loop; usable from any thread.
    public let executor: LoopExecutor
    private let stopper: AsyncWatcher.Sender
    private let thread: pthread_t
    private let joined = LockedValue(false)

    /// Starts a thread that creates a loop, calls `setUp` with it, then runs it until ``stop()``.
    ///
    /// - Parameters:
    ///   - backends: the backends the loop may use (see ``Loop/init(backends:flags:)``).
    ///   - flags: options for the loop.
    ///   - setUp: called on the new thread with the new loop, before it runs.
    /// - Throws: ``EVError/loopCreationFailed(backends:flags:)`` if the loop cannot be created.
    public init(backends: Backend = [], flags: LoopFlags = [],
                setUp: @escaping @Sendable (Loop) -> Void = { _ in }) throws(EVError) {
        let started = StartHandshake()
        let body = ThreadBody {
            let loop: Loop
            do throws(EVError) {
                loop = try Loop(backends: backends, flags: flags)
            } catch {
                started.finish(.failure(error))
                return
            }
            // The stopper keeps the loop running while it has nothing else to do.
            let stopper = loop.async { watcher in
                watcher.stop()
                watcher.loop?.break(.all)
            }
            setUp(loop)
            started.finish(.success((loop.executor, stopper.sender)))
            loop.run()
            loop.close() // even if watchers' closures capture the loop

        }
        var thread = pthread_t()
        let context = Unmanaged.passRetained(body).toOpaque()
        let result = pthread_create(&thread, nil, { context in
            let body = Unmanaged<ThreadBody>.fromOpaque(context!).takeRetainedValue()
            body.run()
            return nil
        }, context)
        precondition(result == 0, "EV.LoopThread: pthread_create failed with errno \(result)")
        self.thread = thread
        switch started.wait() {
        case .success(let (executor, stopper)):
            self.executor = executor
            self.stopper = stopper
        case .failure(let error):
            pthread_join(thread, nil)
            throw error
        }
    }

    /// Asks the loop to stop: it returns from `run` after the current
    /// iteration and is closed on its thread (``Loop/close()``: running the
    /// work already submitted, stopping its watchers). Returns at once; see ``join()``.
    public func stop() {
        stopper.send()
    }

    /// Waits until the loop's thread has ended. Call ``stop()`` first, or
    /// stop the loop from inside. Calling it again returns at once.
    public func join() {
        joined.withLock { joined in
            guard !joined else { return }
            pthread_join(thread, nil)
            joined = true
        }
    }

    deinit {
        stop()
        join()
    }
}

/// The new thread's code, handed to pthread_create through an Unmanaged pointer.
private final class ThreadBody: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

/// Passes the new loop's handles (or its creation error) back to the starting thread.
private final class StartHandshake: Sendable {
    typealias Outcome = Result<(LoopExecutor, AsyncWatcher.Sender), EVError>
    private let outcome = LockedValue<Outcome?>(nil)
    private let ready = DispatchSemaphore(value: 0)

    func finish(_ result: Outcome) {
        outcome.withLock { $0 = result }
        ready.signal()
    }

    func wait() -> Outcome {
        ready.wait()
        return outcome.withLock { $0! }
    }
}
