import Synchronization

/// When a task that reads a socket must let its loop turn first: after
/// the last read drained the socket (the next would only say `EAGAIN`), or
/// after ``maximumReadsPerTurn`` reads in a row found data without waiting
/// - so that a peer whose bytes never stop (a client pipelining without
/// pause, a UDP flood) cannot keep one task running while every other
/// connection and timer of the loop waits. One for every reader of the
/// package (``AsyncSocket``, ``DatagramSocket``).
package struct ReadPacing: ~Copyable, Sendable {
    /// Whether the last read most likely drained the socket.
    private let probablyDrained = Atomic(false)
    /// Reads in a row that found data without waiting.
    private let readsWithoutWaiting = Atomic(0)
    private let readsPerTurn = Atomic(4)

    package init() {}

    /// How many reads in a row may find data before the next one waits for
    /// the loop's next poll: 4 by default, SwiftNIO's `maxMessagesPerRead`
    /// (at least 1).
    package var maximumReadsPerTurn: Int {
        get { readsPerTurn.load(ordering: .relaxed) }
        nonmutating set { readsPerTurn.store(max(newValue, 1), ordering: .relaxed) }
    }

    /// Whether the next read should wait for readiness first.
    package var mustWait: Bool {
        probablyDrained.load(ordering: .relaxed)
            || readsWithoutWaiting.load(ordering: .relaxed) >= readsPerTurn.load(ordering: .relaxed)
    }

    /// A read found data; `drained`: it most likely emptied the socket.
    package func read(drained: Bool) {
        probablyDrained.store(drained, ordering: .relaxed)
        readsWithoutWaiting.add(1, ordering: .relaxed)
    }

    /// A read found nothing (`EAGAIN`): the next one waits.
    package func foundNothing() { probablyDrained.store(true, ordering: .relaxed) }

    /// The loop reported the socket readable: a turn has passed.
    package func waited() {
        readsWithoutWaiting.store(0, ordering: .relaxed)
        probablyDrained.store(false, ordering: .relaxed)
    }
}
