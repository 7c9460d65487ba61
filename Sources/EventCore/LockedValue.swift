import Glibc

/// A value behind a `pthread_mutex_t`, reached only through ``withLock(_:)``.
///
/// The package uses this instead of the standard library's `Mutex` because
/// `Mutex` on Linux is built on raw futex calls in an uninstrumented library,
/// which ThreadSanitizer cannot see: every access it protects would be
/// reported as a race. ThreadSanitizer intercepts `pthread_mutex_lock`, so
/// with this lock `make test`'s TSan run checks the real synchronisation.
package final class LockedValue<Value> {
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
    @usableFromInline var value: Value

    /// Creates a lock guarding `value`.
    package init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let result = pthread_mutex_init(mutex, nil)
        checkUsage(result == 0, "pthread_mutex_init failed: \(result)")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the value while holding the lock.
    ///
    /// - Returns: what `body` returns.
    /// - Throws: what `body` throws; the lock is released either way.
    @inlinable
    package func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}

// Sendable because `value` is only reached through `withLock`, under the
// mutex, and a Sendable value may be handed from thread to thread.
extension LockedValue: @unchecked Sendable where Value: Sendable {}
