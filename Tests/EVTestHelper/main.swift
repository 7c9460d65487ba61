// A single-threaded helper for the tests that must not run inside the
// multi-threaded test runner: fork (only safe from a single-threaded process)
// and the default loop's child watchers (libev reaps every child of the
// process, which would race the runner's other tests). Each scenario prints
// what it saw and exits 0 when it saw what it should.
import EventCore
import Glibc

let scenarios: [String: ([String]) throws -> Int32] = [
    "fork-echo": forkEcho,
    "child-status": childStatus,
    "default-loop": defaultLoop,
    "default-loop-recreated": defaultLoopRecreated,
    "syserr": systemErrorHandler,
    "child-exit-await": childExitAwait,
    "fork-common": forkCommon,
    "child-statuses-on-a-thread": childStatusesOnAThread,
    "wall-clock-jump": wallClockJump,
    "send-from-signal-handler": sendFromSignalHandler,
    "allocation-counts": allocationCounts,
    "misuse": misuse,
    "forgotten-children": forgottenChildren,
    "child-process-default-loop": childProcessOnTheDefaultLoop,
]

// Under libfaketime (LD_PRELOAD), Swift's CommandLine.arguments comes back
// empty: the wall-clock scenario passes its words in EVTESTHELPER_ARGS.
let arguments = getenv("EVTESTHELPER_ARGS").map { String(cString: $0).split(separator: " ").map(String.init) }
    ?? Array(CommandLine.arguments.dropFirst())
guard let name = arguments.first, let scenario = scenarios[name] else {
    writeStandardError("usage: EVTestHelper \(scenarios.keys.sorted().joined(separator: "|")) [arguments]\n")
    exit(64)
}
do {
    exit(try scenario(Array(arguments.dropFirst())))
} catch {
    print("error: \(error)")
    exit(2)
}
