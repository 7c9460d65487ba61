import EV
import Epoll
import EventCore
import Glibc
import TestSupport

/// Misuse the package traps on, each with a message that says what was
/// wrong - in release builds too (`make release-checks` runs these with the
/// release build of this helper; the suite with the debug one). Each
/// scenario is expected to end in the trap, its message containing the
/// text beside it; returning is a failure (exit 1). `misuse --list` prints
/// each name and text, tab-separated, for the checks that run them.
let misuseScenarios: KeyValuePairs<String, (message: String, body: @Sendable () throws -> Void)> = [
    // A LoopBound's value touched from a thread that is not running its loop.
    "loop-bound-off-thread": ("LoopBound<Int>: the value was touched off its loop's thread", {
        let loop = try Loop()
        let bound = try loop.run { executor in LoopBound(0, loop: executor) }
        let thread = try PlainThread { _ = bound.value }
        thread.join()
    }),
    // Two tasks waiting to read the same socket.
    "two-readers": ("two tasks wait on descriptor", {
        let loop = try EpollLoop()
        let (a, _) = try makeSocketPair()
        try loop.run { executor in
            let readiness = executor.readiness(for: FileDescriptor(rawValue: a))
            let bound = LoopBound(unchecked: readiness, loop: executor)
            let first = Task(executorPreference: executor) { try await bound.value.waitReadable() }
            try await executor.yield()
            try await readiness.waitReadable() // the second reader
            _ = await first.result
        }
    }),
    // A task run on the loop from inside one of the loop's callbacks.
    "run-inside-a-callback": ("Loop.run(_:) with a task was called while the loop runs", {
        let loop = try Loop()
        try loop.timer(after: .zero) { timer in
            _ = try? timer.loop!.run { _ in 1 }
        }
        loop.run()
    }),
    // Closing the loop from inside one of its callbacks.
    "close-inside-a-callback": ("close() was called while the loop runs", {
        let loop = try EpollLoop()
        loop.callSoon { [unowned loop] in loop.close() }
        loop.run()
    }),
    // Another thread using a libev loop while it runs: a hammer of timers.
    "libev-from-another-thread": ("is running this loop", {
        let loop = try Loop()
        try loop.timer(after: .seconds(30)) { _ in }
        let box = UncheckedBox(loop)
        let runner = try PlainThread { box.value.run() }
        usleep(50_000) // the runner is inside run() now
        for _ in 0..<1_000_000 { try box.value.timer(after: .seconds(1)) { _ in } }
        runner.join()
    }),
    // The same on the epoll loop.
    "epoll-from-another-thread": ("is running this loop", {
        let loop = try EpollLoop()
        loop.callLater(.seconds(30)) {}
        let box = UncheckedBox(loop)
        let runner = try PlainThread { box.value.run() }
        usleep(50_000)
        for _ in 0..<1_000_000 { box.value.callLater(.seconds(1)) {} }
        runner.join()
    }),
    // C code given the loop from another thread while it runs.
    "raw-loop-from-another-thread": ("withUnsafeEVLoop(_:) was called on thread", {
        let loop = try Loop()
        try loop.timer(after: .seconds(30)) { _ in }
        let box = UncheckedBox(loop)
        let runner = try PlainThread { box.value.run() }
        usleep(50_000)
        box.value.withUnsafeEVLoop { _ in }
        runner.join()
    }),
]

/// Runs the misuse scenario named by the first argument; it should trap.
func misuse(_ arguments: [String]) throws -> Int32 {
    if arguments.first == "--list" {
        for (name, scenario) in misuseScenarios { print("\(name)\t\(scenario.message)") }
        return 0
    }
    guard let name = arguments.first, let scenario = misuseScenarios.first(where: { $0.key == name })?.value else {
        print("misuse: one of \(misuseScenarios.map(\.key).joined(separator: ", "))")
        return 64
    }
    try scenario.body()
    print("misuse \(name): no trap")
    return 1
}

/// Deliberately breaks the thread rule, for the scenarios that check it traps.
final class UncheckedBox<Value>: @unchecked Sendable {
    // Not actually safe to share: that is what the scenarios demonstrate.
    let value: Value
    init(_ value: Value) { self.value = value }
}
