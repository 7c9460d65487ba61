// ev-bench: the EV wrapper beside raw C libev, the same work in the same run.
//
//     swift run -c release --package-path Benchmarks ev-bench [--rounds N] [--quick]
//
// The loop runs on CPU 0 (the process pins its main thread there); the
// cross-thread senders run on CPU 1. Rounds are interleaved, and each row is
// reported as the median ns per operation with the min-max range, and the
// ratio of medians against C libev from the same run.
import CBenchmarks
import EV
import EventCore
import Glibc
import MicroWorkloads

var rounds = 5
var scale = 1
var only: String?
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--rounds": rounds = Int(arguments.popFirst() ?? "") ?? rounds
    case "--quick": scale = 10; rounds = 3
    case "--only": only = arguments.popFirst()
    case "--idle-child":
        // The idle-memory measurement, alone in a fresh process (see below).
        let count = Int(arguments.popFirst() ?? "") ?? 10_000
        print(idleAwaitingConnectionBytes(count: count))
        exit(0)
    default:
        print("usage: ev-bench [--rounds N] [--quick] [--only TEXT]")
        exit(64)
    }
}

let loopCPU: Int32 = 0
let senderCPU: Int32 = 1
cbench_pin_to_cpu(loopCPU)

let timers = 1_000_000 / scale
let roundTrips = getenv("TRIPS").map { Int(atoi($0)) } ?? 1_000_000 / scale
let wakeUps = 100_000 / scale
// Distinct descriptors need one each: the limit here is 20,000.
let cancelledWaitCount = 10_000 / scale
let seed: UInt32 = 20261126

let allBenchmarks = [
    Benchmark(group: "timers: \(timers) random in [0, 1 ms], start + fire", subject: "C libev", operations: timers) {
        cbench_libev_timers(Int32(timers), seed)
    },
    Benchmark(group: "timers: \(timers) random in [0, 1 ms], start + fire", subject: "C libev, a malloc per timer", operations: timers) {
        cbench_libev_timers_malloc(Int32(timers), seed)
    },
    Benchmark(group: "timers: \(timers) random in [0, 1 ms], start + fire", subject: "EV wrapper", operations: timers) {
        wrapperTimers(count: timers, seed: seed)
    },
    Benchmark(group: "timers: \(timers) random in [0, 1 ms], start + fire", subject: "EV wrapper, Loop.once (no watcher object)", operations: timers) {
        wrapperTimers(count: timers, seed: seed, start: .once)
    },
    Benchmark(group: "timers: \(timers) random in [0, 1 ms], start + fire", subject: "C epoll (binary heap)", operations: timers) {
        cbench_epoll_timers(Int32(timers), seed)
    },
    Benchmark(group: "timers: \(timers) random in [0, 1 ms], start + fire", subject: "Epoll loop", operations: timers) {
        epollLoopTimers(count: timers, seed: seed)
    },
    Benchmark(group: "timers: \(timers) random in [0, 1 ms], start + fire", subject: "SwiftNIO (scheduleTask)", operations: timers) {
        nioTimers(count: timers, seed: seed, loopCPU: loopCPU)
    },
    Benchmark(group: "timers: 100 x \(timers / 100) random in [0, 1 ms], start + fire", subject: "C libev", operations: timers) {
        cbench_libev_timer_batches(Int32(timers / 100), 100, seed)
    },
    Benchmark(group: "timers: 100 x \(timers / 100) random in [0, 1 ms], start + fire", subject: "EV wrapper", operations: timers) {
        wrapperTimers(count: timers / 100, batches: 100, seed: seed)
    },
    Benchmark(group: "timers: 100 x \(timers / 100) random in [0, 1 ms], start + fire", subject: "EV wrapper, Loop.once (no watcher object)", operations: timers) {
        wrapperTimers(count: timers / 100, batches: 100, seed: seed, start: .once)
    },
    Benchmark(group: "ping-pong: \(roundTrips) one-byte round trips, socketpair", subject: "C libev", operations: roundTrips) {
        cbench_libev_pingpong(Int32(roundTrips))
    },
    Benchmark(group: "ping-pong: \(roundTrips) one-byte round trips, socketpair", subject: "EV wrapper", operations: roundTrips) {
        wrapperPingPong(count: roundTrips)
    },
    Benchmark(group: "ping-pong: \(roundTrips) one-byte round trips, socketpair", subject: "C epoll", operations: roundTrips) {
        cbench_epoll_pingpong(Int32(roundTrips))
    },
    Benchmark(group: "ping-pong: \(roundTrips) one-byte round trips, socketpair", subject: "Epoll loop", operations: roundTrips) {
        epollLoopPingPong(count: roundTrips)
    },
    Benchmark(group: "ping-pong: \(roundTrips) one-byte round trips, socketpair", subject: "SwiftNIO (two channels)", operations: roundTrips) {
        nioPingPong(count: roundTrips, loopCPU: loopCPU)
    },
    Benchmark(group: "async ping-pong: \(roundTrips) round trips, two tasks", subject: "EV callbacks (reference)", operations: roundTrips) {
        wrapperPingPong(count: roundTrips)
    },
    Benchmark(group: "async ping-pong: \(roundTrips) round trips, two tasks", subject: "EV async, tasks on the loop's executor", operations: roundTrips) {
        asyncPingPongOnLoop(count: roundTrips)
    },
    Benchmark(group: "async ping-pong: \(roundTrips) round trips, two tasks", subject: "EV async, an actor on the loop's serial executor", operations: roundTrips) {
        asyncPingPongOnActor(count: roundTrips)
    },
    Benchmark(group: "async ping-pong: \(roundTrips) round trips, two tasks", subject: "EV async, an actor on the loop, its tasks preferring the loop", operations: roundTrips) {
        asyncPingPongOnActor(count: roundTrips, preferLoop: true)
    },
    Benchmark(group: "async ping-pong: \(roundTrips) round trips, two tasks", subject: "Epoll callbacks", operations: roundTrips) {
        epollLoopPingPong(count: roundTrips)
    },
    Benchmark(group: "async ping-pong: \(roundTrips) round trips, two tasks", subject: "Epoll async, tasks on the loop's executor", operations: roundTrips) {
        epollAsyncPingPong(count: roundTrips)
    },
    Benchmark(group: "async ping-pong: \(roundTrips / 10) round trips, two tasks", subject: "EV callbacks (reference)", operations: roundTrips / 10) {
        wrapperPingPong(count: roundTrips / 10)
    },
    Benchmark(group: "async ping-pong: \(roundTrips / 10) round trips, two tasks", subject: "EV async, tasks on the global executor", operations: roundTrips / 10) {
        asyncPingPongOnGlobalExecutor(count: roundTrips / 10, loopCPU: loopCPU)
    },
    Benchmark(group: "async: \(cancelledWaitCount) tasks awaiting readability, then all cancelled", subject: "EV, each on a descriptor of its own", operations: cancelledWaitCount) {
        cancelledWaits(count: cancelledWaitCount, oneDescriptor: false, epoll: false)
    },
    Benchmark(group: "async: \(cancelledWaitCount) tasks awaiting readability, then all cancelled", subject: "EV, all on one descriptor", operations: cancelledWaitCount) {
        cancelledWaits(count: cancelledWaitCount, oneDescriptor: true, epoll: false)
    },
    Benchmark(group: "async: \(cancelledWaitCount) tasks awaiting readability, then all cancelled", subject: "Epoll, each on a descriptor of its own", operations: cancelledWaitCount) {
        cancelledWaits(count: cancelledWaitCount, oneDescriptor: false, epoll: true)
    },
    Benchmark(group: "async: \(cancelledWaitCount) tasks awaiting readability, then all cancelled", subject: "Epoll, all on one descriptor", operations: cancelledWaitCount) {
        cancelledWaits(count: cancelledWaitCount, oneDescriptor: true, epoll: true)
    },
    Benchmark(group: "cross-thread wake-up: \(wakeUps), loop CPU 0, sender CPU 1", subject: "C libev (ev_async_send)", operations: wakeUps) {
        cbench_libev_crossthread(Int32(wakeUps), loopCPU, senderCPU)
    },
    Benchmark(group: "cross-thread wake-up: \(wakeUps), loop CPU 0, sender CPU 1", subject: "EV wrapper (AsyncWatcher.Sender)", operations: wakeUps) {
        wrapperCrossThread(count: wakeUps, loopCPU: loopCPU, senderCPU: senderCPU)
    },
    Benchmark(group: "cross-thread wake-up: \(wakeUps), loop CPU 0, sender CPU 1", subject: "EV wrapper (LoopExecutor.execute)", operations: wakeUps) {
        wrapperExecutorCrossThread(count: wakeUps, loopCPU: loopCPU, senderCPU: senderCPU)
    },
    Benchmark(group: "cross-thread wake-up: \(wakeUps), loop CPU 0, sender CPU 1", subject: "C epoll (eventfd)", operations: wakeUps) {
        cbench_epoll_crossthread(Int32(wakeUps), loopCPU, senderCPU)
    },
    Benchmark(group: "cross-thread wake-up: \(wakeUps), loop CPU 0, sender CPU 1", subject: "Epoll loop (EpollExecutor.execute)", operations: wakeUps) {
        epollLoopCrossThread(count: wakeUps, loopCPU: loopCPU, senderCPU: senderCPU)
    },
    Benchmark(group: "cross-thread wake-up: \(wakeUps), loop CPU 0, sender CPU 1", subject: "SwiftNIO (EventLoop.execute)", operations: wakeUps) {
        nioCrossThread(count: wakeUps, loopCPU: loopCPU, senderCPU: senderCPU)
    },
]

let benchmarks = allBenchmarks.filter { only == nil || "\($0.group) \($0.subject)".contains(only!) }
var noise: [Double] = []
let samples = measure(benchmarks, rounds: rounds) { line in
    writeProgress(line)
}
for _ in 0..<rounds { noise.append(machineNoiseProbe()) }
writeProgress(nil)

print("# EV wrapper vs C libev \(Loop.libevVersion.major).\(Loop.libevVersion.minor) - release build, loop pinned to CPU 0, \(rounds) interleaved rounds")
print("")
var group = ""
var reference = 0.0
for (benchmark, values) in zip(benchmarks, samples) {
    let summary = Summary(values)
    if benchmark.group != group {
        group = benchmark.group
        reference = summary.median
        print("\n## \(group)")
        print("| subject | ns/op (median) | min - max | vs C |")
        print("|---|---:|---:|---:|")
    }
    print("| \(benchmark.subject) | \(fixed(summary.median, 1)) | \(fixed(summary.min, 1)) - \(fixed(summary.max, 1)) | \(fixed(summary.median / reference, 2))x |")
}
if only == nil || only == "idle" {
    // In a process of its own: after the other benchmarks the heap holds
    // freed memory that new connections reuse, and RSS would not grow.
    let connections = 10_000 / scale
    let child = try! SpawnedClient(["/proc/self/exe", "--idle-child", "\(connections)"])
    let bytes = Double(child.readAll().filter { !$0.isWhitespace }) ?? .nan
    child.finish()
    print("\n## memory: \(connections) idle connections, each a task parked in read()")
    print("| subject | bytes of RSS per connection |")
    print("|---|---:|")
    print("| EV async (AsyncListener + a task per connection) | \(fixed(bytes, 0)) |")
}
let noiseSummary = Summary(noise)
print("\nmachine noise: a fixed CPU loop took \(fixed(noiseSummary.median * 1000, 1)) ms (min \(fixed(noiseSummary.min * 1000, 1)), max \(fixed(noiseSummary.max * 1000, 1)))")

func writeProgress(_ line: String?) {
    let text = line.map { "\r\u{1B}[K\($0)" } ?? "\r\u{1B}[K"
    if isatty(2) != 0 { _ = text.withCString { write(2, $0, strlen($0)) } }
}
