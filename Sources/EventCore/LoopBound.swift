/// A value that only its loop's thread may touch, in a `Sendable` wrapper -
/// SwiftNIO's `NIOLoopBound`: it can be captured by `Sendable` closures and
/// tasks, carried to the loop (``EventLoopExecutor/execute(_:)-(()->Void)``), and
/// read there; reading it anywhere else traps.
///
/// ```swift
/// let state = LoopBound(ConnectionTable(), loop: executor)   // ConnectionTable is not Sendable
/// try executor.execute { state.value.closeIdle() }            // checked: on the loop, fine
/// ```
///
/// Every access checks that the calling thread is running the loop now
/// (``EventLoopExecutor/isCurrent``), in debug and release builds alike: a
/// thread-local read and a compare, a few nanoseconds. A value shared by
/// several closures and changed by them is a class (the wrapper holds the
/// reference; its properties change through ``value``).
public struct LoopBound<Value>: @unchecked Sendable {
    // Sendable, though `Value` may not be: `storage` is reached only through
    // `value`, which traps unless the calling thread is running `loop` - the
    // one thread the value belongs to - so no two threads ever touch it. A
    // value wrapped on the loop is the loop's already; one wrapped elsewhere
    // is handed over (`sending`), so its old thread keeps no way to it.
    private var storage: Value
    /// The loop the value belongs to.
    public let loop: any EventLoopExecutor

    /// Wraps `value`, which belongs to `loop`; call it on the loop's thread (checked).
    public init(_ value: Value, loop: any EventLoopExecutor) {
        storage = value
        self.loop = loop
        check()
    }

    /// Wraps `value` for `loop` from any thread, handing it over: the
    /// calling thread gives it up (`sending`).
    public init(sending value: sending Value, loop: any EventLoopExecutor) {
        storage = value
        self.loop = loop
    }

    /// Wraps a value from any thread without handing it over: for the await
    /// core, whose suspending task keeps a reference but touches the value
    /// only while it runs on the loop, or not at all once it has sent the
    /// value there. Every access is checked all the same.
    package init(unchecked value: Value, loop: any EventLoopExecutor) {
        storage = value
        self.loop = loop
    }

    /// The value; traps unless called on the loop's thread while it runs.
    public var value: Value {
        get {
            check()
            return storage
        }
        set {
            check()
            storage = newValue
        }
    }

    @inline(__always)
    private func check() {
        if !loop.isCurrent { wrongThread() }
    }

    @inline(never)
    private func wrongThread() -> Never {
        misuse("LoopBound<\(Value.self)>: the value was touched off its loop's thread; reach it through executor.execute { } or a task on the loop")
    }
}

/// A mutable value that only its loop's thread may touch, shared by
/// reference - SwiftNIO's `NIOLoopBoundBox`: several `Sendable` closures
/// and tasks capture one box and change its ``value`` in place, where
/// ``LoopBound`` (a value type) would need a `var` of its own in each.
///
/// ```swift
/// let served = LoopBoundBox(0, loop: executor)
/// Task(executorPreference: executor) { served.value += 1 }   // checked: on the loop
/// ```
///
/// Every access checks the thread as ``LoopBound`` does, and traps off it.
public final class LoopBoundBox<Value>: Sendable {
    // Sendable with no unchecked claim: the only stored property is a
    // `LoopBound` (checked on every access) of a reference to the cell.
    private let bound: LoopBound<Cell>

    private final class Cell {
        var value: Value
        init(_ value: Value) { self.value = value }
    }

    /// The loop the value belongs to.
    public var loop: any EventLoopExecutor { bound.loop }

    /// Boxes `value`, which belongs to `loop`; call it on the loop's thread (checked).
    public init(_ value: Value, loop: any EventLoopExecutor) {
        bound = LoopBound(Cell(value), loop: loop)
    }

    /// Boxes `value` for `loop` from any thread, handing it over: the
    /// calling thread gives it up (`sending`).
    public init(sending value: sending Value, loop: any EventLoopExecutor) {
        bound = LoopBound(sending: Cell(value), loop: loop)
    }

    /// The value; traps unless called on the loop's thread while it runs.
    public var value: Value {
        get { bound.value.value }
        _modify { yield &bound.value.value }  // in place: `box.value.append(x)` copies nothing
    }
}
