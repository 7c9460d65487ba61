import CBenchmarks
import EV
import Glibc
import Synchronization

// The EV wrapper doing exactly what libev_micro.c does in C.

/// How the wrapper's timer benchmarks start each timer.
public enum TimerStart {
    /// `loop.timer(after:)`: a watcher made per timer.
    case watcher
    /// `loop.once(after:)`: libev's timer and the callback in a slot of
    /// the loop's watcher memory, no watcher object.
    case once
}

/// `batches` rounds of `count` timers with the C benchmark's pseudo-random
/// delays, each round started and run until all fired.
public func wrapperTimers(count: Int, batches: Int = 1, seed: UInt32, start kind: TimerStart = .watcher) -> Double {
    let loop = try! Loop(backends: .epoll)
    var state = seed
    var fired = 0
    let start = cbench_now()
    for _ in 0..<batches {
        for _ in 0..<count {
            switch kind {
            case .watcher: try! loop.timer(after: delay(&state)) { _ in fired += 1 }
            case .once: loop.once(after: delay(&state)) { _ in fired += 1 }
            }
        }
        loop.run()
    }
    let elapsed = cbench_now() - start
    precondition(fired == count * batches, "only \(fired) of \(count * batches) timers fired")
    return elapsed
}

/// `count` one-byte round trips over a socketpair, two io watchers on one loop.
public func wrapperPingPong(count: Int) -> Double {
    var fds: [Int32] = [-1, -1]
    precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds) == 0)
    defer {
        close(fds[0])
        close(fds[1])
    }
    let loop = try! Loop(backends: .epoll)
    var left = count
    var byte: UInt8 = 0
    let ping = try! loop.io(FileDescriptor(rawValue: fds[0]), .read) { watcher, _ in
        precondition(read(watcher.descriptor.rawValue, &byte, 1) == 1)
        left -= 1
        if left == 0 {
            watcher.loop!.break(.all)
            return
        }
        precondition(write(watcher.descriptor.rawValue, &byte, 1) == 1)
    }
    let pong = try! loop.io(FileDescriptor(rawValue: fds[1]), .read) { watcher, _ in
        precondition(read(watcher.descriptor.rawValue, &byte, 1) == 1)
        precondition(write(watcher.descriptor.rawValue, &byte, 1) == 1)
    }
    let start = cbench_now()
    precondition(write(fds[0], "x", 1) == 1)
    loop.run()
    let elapsed = cbench_now() - start
    ping.stop()
    pong.stop()
    return elapsed
}

final class Flags: Sendable {
    let acknowledged = Atomic<Int>(0)
    let done = Atomic<Bool>(false)
    let elapsed = Atomic<UInt64>(0)
}

/// `count` wake-ups through an ``AsyncWatcher``'s sender, each waiting for its callback.
public func wrapperCrossThread(count: Int, loopCPU: Int32, senderCPU: Int32) -> Double {
    cbench_pin_to_cpu(loopCPU)
    let loop = try! Loop(backends: .epoll)
    let flags = Flags()
    let watcher = loop.async { watcher in
        if flags.done.load(ordering: .acquiring) {
            watcher.loop!.break(.all)
            return
        }
        flags.acknowledged.add(1, ordering: .releasing)
    }
    let sender = watcher.sender
    let thread = pinnedThread(cpu: senderCPU) {
        let start = cbench_now()
        for i in 1...count {
            sender.send()
            while flags.acknowledged.load(ordering: .acquiring) < i {}
        }
        flags.elapsed.store((cbench_now() - start).bitPattern, ordering: .relaxed)
        flags.done.store(true, ordering: .releasing)
        sender.send()
    }
    loop.run()
    thread.join()
    watcher.stop()
    return Double(bitPattern: flags.elapsed.load(ordering: .relaxed))
}

/// `count` closures handed to ``LoopExecutor/execute(_:)`` from another thread, each waiting for the last to run.
public func wrapperExecutorCrossThread(count: Int, loopCPU: Int32, senderCPU: Int32) -> Double {
    cbench_pin_to_cpu(loopCPU)
    let loop = try! Loop(backends: .epoll)
    let flags = Flags()
    let keepAlive = loop.async { watcher in watcher.loop!.break(.all) } // ends the run
    let stopper = keepAlive.sender
    let executor = loop.executor
    let thread = pinnedThread(cpu: senderCPU) {
        let start = cbench_now()
        for i in 1...count {
            try! executor.execute { flags.acknowledged.add(1, ordering: .releasing) }
            while flags.acknowledged.load(ordering: .acquiring) < i {}
        }
        flags.elapsed.store((cbench_now() - start).bitPattern, ordering: .relaxed)
        stopper.send()
    }
    loop.run()
    thread.join()
    keepAlive.stop()
    return Double(bitPattern: flags.elapsed.load(ordering: .relaxed))
}

/// The C peers' random delay (seconds, a `Double`), as the `Duration` an app
/// would write: whole nanoseconds. (`Duration.seconds(Double)` costs 20-27 ns
/// a call on this machine, `.nanoseconds(Int64)` 1-4: an app that has its
/// delays as Doubles pays that conversion, one that writes `.milliseconds(5)`
/// does not.)
@inline(__always)
func delay(_ state: inout UInt32) -> Duration {
    .nanoseconds(Int64(cbench_timer_delay(&state) * 1e9))
}
