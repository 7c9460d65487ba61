// A minimal reproduction, outside the package, of what Swift 6.3's
// withTaskCancellationHandler does to an actor's code (swiftlang/swift#85518):
// called from a nonisolated(nonsending) function - where a library's
// cancellable await lives - its operation runs off the caller's actor.
//
//   swiftc -O -parse-as-library -swift-version 6 \
//     -enable-upcoming-feature NonisolatedNonsendingByDefault \
//     Benchmarks/scripts/cancellation_handler_hop.swift -o /tmp/hop && /tmp/hop
//
// The actor runs on a serial executor of its own (a dispatch queue it can
// recognise); each line says how often the operation found itself off the
// actor after a suspension, and what an await cost. EventCore's
// withCancellableContinuation is the workaround's shape: a closure that
// captures an `isolated` parameter is isolated to that actor.
import Dispatch

final class QueueExecutor: SerialExecutor {
    static let shared = QueueExecutor()
    let queue = DispatchQueue(label: "actor")
    static let key = DispatchSpecificKey<Bool>()
    init() { queue.setSpecific(key: Self.key, value: true) }
    /// Whether the caller runs on the actor's queue.
    static var onActor: Bool { DispatchQueue.getSpecific(key: key) == true }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedSerialExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}

actor Worker {
    nonisolated var unownedExecutor: UnownedSerialExecutor { QueueExecutor.shared.asUnownedSerialExecutor() }

    /// `n` awaits, each suspending once; how many resumed off the actor.
    func run(_ n: Int, _ wait: () async -> Bool) async -> Int {
        var off = 0
        for _ in 0..<n where await wait() { off += 1 }
        return off
    }
}

/// withTaskCancellationHandler written where a library writes it.
nonisolated(nonsending) func standardLibrary() async -> Bool {
    await withTaskCancellationHandler {
        await Task.yield()
        return !QueueExecutor.onActor
    } onCancel: {}
}

/// The same through a function with an `isolated` parameter that the operation captures.
nonisolated(nonsending) func workaround() async -> Bool {
    await onCaller(#isolation)
}

func onCaller(_ isolation: isolated (any Actor)?) async -> Bool {
    await withTaskCancellationHandler {
        _ = isolation
        await Task.yield()
        return !QueueExecutor.onActor
    } onCancel: {}
}

@main struct Main {
    static func main() async {
        let worker = Worker()
        let n = 20_000
        for (name, wait) in [("withTaskCancellationHandler in a nonsending function", standardLibrary),
                             ("the same, operation capturing an isolated parameter ", workaround)]
            as [(String, @Sendable () async -> Bool)] {
            let start = DispatchTime.now().uptimeNanoseconds
            let off = await worker.run(n, wait)
            let ns = (DispatchTime.now().uptimeNanoseconds - start) / UInt64(n)
            print("\(name): \(off) of \(n) resumed off the actor, \(ns) ns per await")
        }
    }
}
