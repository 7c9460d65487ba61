// The micro benchmarks under package-benchmark (ordo-one/benchmark): the
// same workloads as ev-bench's rows (Sources/MicroWorkloads, and the C peers
// of CBenchmarks), with the package's statistics, malloc and syscall counts,
// and baselines to compare against (`swift package benchmark baseline ...`).
//
//     make bench-micro        # or, in Benchmarks/:
//     swift package --disable-sandbox benchmark --target Micro
//
// Each iteration does 1,000 operations (`scalingFactor: .kilo`; the timers a
// million): the figures marked * are per operation. Each runs on CPU 0.
import Benchmark
import CBenchmarks
import MicroWorkloads

let seed: UInt32 = 20261126

/// One benchmark of `scale` operations an iteration, run by `work(count)`
/// on CPU 0 (the pinning is outside the measurement).
func micro(_ name: String, scale: BenchmarkScalingFactor = .kilo, _ work: @escaping @Sendable (Int) -> Double) {
    Benchmark(name, configuration: .init(
        metrics: [.wallClock, .mallocCountTotal, .throughput],
        timeUnits: .nanoseconds,
        scalingFactor: scale,
        maxDuration: .seconds(scale == .mega ? 8 : 2),
        maxIterations: scale == .mega ? 12 : 2_000
    )) { benchmark in
        _ = cbench_pin_to_cpu(0)
        benchmark.startMeasurement()
        blackHole(work(benchmark.scaledIterations.count))
        benchmark.stopMeasurement()
    }
}

let benchmarks: @Sendable () -> Void = {
    do {
        // A million timers an iteration, as ev-bench's row: with fewer, the
        // iteration is the longest delay (1 ms), not the work.
        micro("timers: start + fire, C libev", scale: .mega) { cbench_libev_timers(Int32($0), seed) }
        micro("timers: start + fire, EV wrapper", scale: .mega) { wrapperTimers(count: $0, seed: seed) }
        micro("timers: start + fire, EV wrapper, Loop.once", scale: .mega) { wrapperTimers(count: $0, seed: seed, start: .once) }
        micro("timers: start + fire, C epoll", scale: .mega) { cbench_epoll_timers(Int32($0), seed) }
        micro("timers: start + fire, Epoll loop", scale: .mega) { epollLoopTimers(count: $0, seed: seed) }
        micro("timers: start + fire, SwiftNIO", scale: .mega) { nioTimers(count: $0, seed: seed, loopCPU: 0) }
        micro("readiness ping-pong: C libev") { cbench_libev_pingpong(Int32($0)) }
        micro("readiness ping-pong: EV wrapper") { wrapperPingPong(count: $0) }
        micro("readiness ping-pong: C epoll") { cbench_epoll_pingpong(Int32($0)) }
        micro("readiness ping-pong: Epoll loop") { epollLoopPingPong(count: $0) }
        micro("readiness ping-pong: SwiftNIO") { nioPingPong(count: $0, loopCPU: 0) }
        micro("async ping-pong: tasks on libev's executor") { asyncPingPongOnLoop(count: $0) }
        micro("async ping-pong: tasks on the epoll loop's executor") { epollAsyncPingPong(count: $0) }
        micro("async ping-pong: an actor on libev's executor") { asyncPingPongOnActor(count: $0) }
        micro("async ping-pong: an actor on libev's executor, tasks preferring the loop") {
            asyncPingPongOnActor(count: $0, preferLoop: true)
        }
        // Wake-ups from a thread on CPU 1, each waiting for its callback.
        micro("cross-thread wake-up: C libev ev_async") { cbench_libev_crossthread(Int32($0), 0, 1) }
        micro("cross-thread wake-up: EV AsyncWatcher") { wrapperCrossThread(count: $0, loopCPU: 0, senderCPU: 1) }
        micro("cross-thread wake-up: EV executor") { wrapperExecutorCrossThread(count: $0, loopCPU: 0, senderCPU: 1) }
        micro("cross-thread wake-up: C epoll eventfd") { cbench_epoll_crossthread(Int32($0), 0, 1) }
        micro("cross-thread wake-up: Epoll loop") { epollLoopCrossThread(count: $0, loopCPU: 0, senderCPU: 1) }
        micro("cross-thread wake-up: SwiftNIO") { nioCrossThread(count: $0, loopCPU: 0, senderCPU: 1) }
    }
}
