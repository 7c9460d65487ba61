import Glibc

/// Which loop's executor the current thread is running, if any: a
/// thread-local set by ``Loop/run(_:)`` for its duration (and by the loop's
/// teardown). Jobs enqueued on a thread whose current executor is the target
/// take the lock-free local path; `isCurrent` answers "am I on the loop?".
enum CurrentLoop {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let result = pthread_key_create(&key, nil)
        precondition(result == 0, "pthread_key_create failed: \(result)")
        return key
    }()

    /// The executor running on this thread, as an opaque pointer (never dereferenced here).
    static var executor: UnsafeMutableRawPointer? {
        pthread_getspecific(key)
    }

    /// Makes `executor` current on this thread for `body`, then restores the previous one.
    static func with<Result>(_ executor: LoopExecutor, _ body: () throws -> Result) rethrows -> Result {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, Unmanaged.passUnretained(executor).toOpaque())
        defer { pthread_setspecific(key, previous) }
        return try body()
    }
}
