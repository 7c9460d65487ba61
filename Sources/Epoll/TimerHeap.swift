import EventCore

/// A timer of an ``EpollLoop``: calls back once, at its deadline, unless cancelled.
public final class LoopTimer {
    /// When it fires, in seconds of ``/EventCore/monotonicNow()`` (changed
    /// only when the monitor's probe re-arms it, out of the heap).
    var due: Double
    var sequence: UInt64
    var callback: (() -> Void)?
    unowned(unsafe) var loop: EpollLoop?
    /// Whether it keeps the loop running (every timer but the monitor's probe).
    let keepsLoopAlive: Bool

    init(due: Double, sequence: UInt64, loop: EpollLoop, keepsLoopAlive: Bool = true, callback: @escaping () -> Void) {
        self.due = due
        self.sequence = sequence
        self.loop = loop
        self.keepsLoopAlive = keepsLoopAlive
        self.callback = callback
    }

    /// When it fires.
    public var deadline: ContinuousClock.Instant { LoopTime.instant(monotonicSeconds: due) }

    /// Whether it is still waiting to fire.
    public var isPending: Bool { callback != nil }

    /// Cancels the timer; harmless once it has fired or been cancelled.
    public func cancel() {
        guard callback != nil else { return }
        callback = nil
        loop?.timerCancelled(keepsLoopAlive)
    }
}

/// The loop's timers, a binary min-heap by deadline (ties in the order they
/// were made), as asyncio keeps its `_scheduled` list.
///
/// Each entry carries its timer's deadline and sequence beside the reference
/// (libev's heap does the same with its `ANHE`, the `at` cached beside the
/// watcher): sifting compares entries without loading the timer objects,
/// which with many timers are scattered over the heap and miss the cache.
///
/// Cancelling is lazy (the entry stays until it comes up), so the heap is
/// rebuilt without cancelled entries when they are more than half of it: a
/// server that pushes back thousands of idle timeouts does not grow it.
struct TimerHeap {
    private struct Entry {
        let deadline: Double
        let sequence: UInt64
        let timer: LoopTimer

        func isBefore(_ other: Entry) -> Bool {
            deadline < other.deadline || (deadline == other.deadline && sequence < other.sequence)
        }
    }

    private var heap: [Entry] = []
    private(set) var cancelled = 0

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }

    /// The earliest deadline of a timer that will still fire.
    mutating func nextDeadline() -> Double? {
        dropCancelledTop()
        return heap.first?.deadline
    }

    mutating func insert(_ timer: LoopTimer) {
        heap.append(Entry(deadline: timer.due, sequence: timer.sequence, timer: timer))
        siftUp(heap.count - 1)
    }

    /// Removes and returns the earliest timer due at `now`, skipping cancelled ones.
    mutating func popDue(_ now: Double) -> LoopTimer? {
        dropCancelledTop()
        guard let first = heap.first, first.deadline <= now else { return nil }
        removeTop()
        return first.timer
    }

    mutating func noteCancelled() {
        cancelled += 1
        if cancelled > 64 && cancelled * 2 > heap.count { rebuild() }
    }

    mutating func removeAll() -> [LoopTimer] {
        defer {
            heap.removeAll()
            cancelled = 0
        }
        return heap.map(\.timer)
    }

    private mutating func dropCancelledTop() {
        while let first = heap.first, first.timer.callback == nil {
            removeTop()
            cancelled -= 1
        }
    }

    private mutating func rebuild() {
        heap.removeAll { $0.timer.callback == nil }
        cancelled = 0
        for index in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(index) }
    }

    private mutating func removeTop() {
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        }
    }

    // The sifts work on the array's buffer: one uniqueness check per sift
    // rather than one per swap.
    private mutating func siftUp(_ start: Int) {
        heap.withUnsafeMutableBufferPointer { heap in
            let entry = heap[start]
            var child = start
            while child > 0 {
                let parent = (child - 1) / 2
                guard entry.isBefore(heap[parent]) else { break }
                heap.swapAt(child, parent)
                child = parent
            }
        }
    }

    private mutating func siftDown(_ start: Int) {
        heap.withUnsafeMutableBufferPointer { heap in
            let entry = heap[start]
            var parent = start
            while true {
                let left = 2 * parent + 1
                guard left < heap.count else { break }
                var smallest = left
                if left + 1 < heap.count && heap[left + 1].isBefore(heap[left]) { smallest = left + 1 }
                guard heap[smallest].isBefore(entry) else { break }
                heap.swapAt(smallest, parent)
                parent = smallest
            }
        }
    }
}
