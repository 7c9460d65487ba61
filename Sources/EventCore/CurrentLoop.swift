import Glibc

/// Which loop the current thread is running, if any: a thread-local each
/// loop sets for the duration of its `run` (and of its teardown). Both loops'
/// executors answer "am I on the loop?" (`isCurrent`) with it, and take the
/// lock-free local path for work queued there.
package enum CurrentLoop {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let result = pthread_key_create(&key, nil)
        checkUsage(result == 0, "pthread_key_create failed: \(result)")
        return key
    }()

    /// The object identifying the loop running on this thread (its executor),
    /// as an opaque pointer (never dereferenced).
    package static var executor: UnsafeMutableRawPointer? {
        pthread_getspecific(key)
    }

    /// The executor of the loop running on this thread, if any (alive as
    /// long as the loop runs here).
    package static var currentExecutor: (any EventLoopExecutor)? {
        guard let pointer = pthread_getspecific(key) else { return nil }
        return Unmanaged<AnyObject>.fromOpaque(pointer).takeUnretainedValue() as? any EventLoopExecutor
    }

    /// Whether `executor`'s loop runs on this thread now.
    @inline(__always)
    package static func isCurrent(_ executor: AnyObject) -> Bool {
        pthread_getspecific(key) == Unmanaged.passUnretained(executor).toOpaque()
    }

    /// Makes `executor` current on this thread for `body`, then restores the previous one.
    package static func with<Result>(_ executor: AnyObject, _ body: () throws -> Result) rethrows -> Result {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, Unmanaged.passUnretained(executor).toOpaque())
        defer { pthread_setspecific(key, previous) }
        return try body()
    }
}
