import CBenchmarks
import Epoll
import EventCore
import Glibc
import Synchronization

// The Epoll module doing what the C benchmarks do.

public func epollLoopTimers(count: Int, seed: UInt32) -> Double {
    let loop = try! EpollLoop()
    var state = seed
    var fired = 0
    let start = cbench_now()
    for _ in 0..<count {
        loop.callLater(delay(&state)) { fired += 1 }
    }
    loop.run()
    let elapsed = cbench_now() - start
    precondition(fired == count, "only \(fired) of \(count) timers fired")
    return elapsed
}

public func epollLoopPingPong(count: Int) -> Double {
    var fds: [Int32] = [-1, -1]
    precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds) == 0)
    defer {
        close(fds[0])
        close(fds[1])
    }
    let loop = try! EpollLoop()
    var left = count
    var byte: UInt8 = 0
    let ping = try! loop.watch(FileDescriptor(rawValue: fds[0]), .read) { watch, _ in
        precondition(read(watch.descriptor.rawValue, &byte, 1) == 1)
        left -= 1
        if left == 0 {
            watch.loop?.stop()
            return
        }
        precondition(write(watch.descriptor.rawValue, &byte, 1) == 1)
    }
    let pong = try! loop.watch(FileDescriptor(rawValue: fds[1]), .read) { watch, _ in
        precondition(read(watch.descriptor.rawValue, &byte, 1) == 1)
        precondition(write(watch.descriptor.rawValue, &byte, 1) == 1)
    }
    let start = cbench_now()
    precondition(write(fds[0], "x", 1) == 1)
    loop.run()
    let elapsed = cbench_now() - start
    ping.cancel()
    pong.cancel()
    return elapsed
}

public func epollLoopCrossThread(count: Int, loopCPU: Int32, senderCPU: Int32) -> Double {
    cbench_pin_to_cpu(loopCPU)
    let loop = try! EpollLoop()
    let flags = Flags()
    let executor = loop.executor
    let thread = pinnedThread(cpu: senderCPU) {
        let start = cbench_now()
        for i in 1...count {
            try! executor.execute { flags.acknowledged.add(1, ordering: .releasing) }
            while flags.acknowledged.load(ordering: .acquiring) < i {}
        }
        flags.elapsed.store((cbench_now() - start).bitPattern, ordering: .relaxed)
        try? executor.execute { loop in loop.stop() }
    }
    loop.runForever()
    thread.join()
    return Double(bitPattern: flags.elapsed.load(ordering: .relaxed))
}

/// The async ping-pong of AsyncMicro.swift, unchanged, on the epoll loop.
public func epollAsyncPingPong(count: Int) -> Double {
    let loop = try! EpollLoop()
    let (a, b) = makeSocketPair()
    return try! loop.run { executor in try await timedPingPong(a, b, count: count, on: executor) }
}
