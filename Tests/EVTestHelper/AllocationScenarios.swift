import EV
import Epoll
import EventCore
import Glibc

// Allocation counts per operation, for the allocation guards of `make test`
// (Tests/AllocationCounter). Run under LD_PRELOAD of malloc_counter.so,
// which counts every heap allocation of the process; each scenario reads the
// counter around a measured stretch (after a warm-up of the same work) and
// prints `name allocations-per-operation`, one line each.

/// The preloaded counter's reading; nil when the counter is not preloaded.
private let readCounter: (@convention(c) () -> UInt)? = {
    guard let symbol = dlsym(nil /* RTLD_DEFAULT on glibc */, "malloc_counter_allocations") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) () -> UInt).self)
}()

/// Allocations per operation of `count` operations done by `work`, after
/// `count / 10` of them as a warm-up.
private func allocationsPerOperation(_ count: Int, _ work: (Int) -> Void) -> Double {
    work(max(1, count / 10))
    let before = readCounter!()
    work(count)
    return Double(readCounter!() - before) / Double(count)
}

private func report(_ name: String, _ perOperation: Double) {
    print("\(name) \((perOperation * 1000).rounded() / 1000)")
}

private func socketPair() -> (Int32, Int32) {
    var fds: [Int32] = [-1, -1]
    precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds) == 0)
    return (fds[0], fds[1])
}

func allocationCounts(_ arguments: [String]) throws -> Int32 {
    guard readCounter != nil else {
        print("error: malloc_counter.so is not preloaded (LD_PRELOAD)")
        return 2
    }
    let count = arguments.first.flatMap(Int.init) ?? 10_000
    let loop = try Loop(backends: .epoll)
    let epoll = try EpollLoop()

    // A one-shot timer made, started and fired: the benchmark's timer.
    report("ev.timer.new-start-fire", allocationsPerOperation(count) { count in
        var fired = 0
        for _ in 0..<count { _ = try! loop.timer(after: .zero) { _ in fired += 1 } }
        loop.run()
        precondition(fired == count)
    })
    // One timer watcher kept and restarted with again(): libev's own advice.
    report("ev.timer.kept-again-fire", allocationsPerOperation(count) { count in
        var fired = 0
        let timer = try! TimerWatcher(loop: loop, after: .zero, repeat: .zero) { _ in fired += 1 }
        for _ in 0..<count {
            timer.start()
            loop.run()
        }
        precondition(fired == count)
    })
    // Loop.once with only a timeout: libev's timer and the callback in a
    // slot of the loop's watcher memory, no object. In batches of 1,000 in
    // flight (the warm-up gives the memory as many slots).
    report("ev.once.timeout-fire", allocationsPerOperation(count) { count in
        var fired = 0
        for _ in 0..<max(1, count / 1000) {
            for _ in 0..<1000 { loop.once(after: .zero) { _ in fired += 1 } }
            loop.run()
        }
        precondition(fired == max(1, count / 1000) * 1000)
    } * Double(count) / Double(max(1, count / 1000) * 1000))
    // The epoll loop's timer.
    report("epoll.timer.new-start-fire", allocationsPerOperation(count) { count in
        var fired = 0
        for _ in 0..<count { epoll.callLater(.zero) { fired += 1 } }
        epoll.run()
        precondition(fired == count)
    })

    // A readiness callback: one-byte ping-pong over a socketpair, two watchers.
    report("ev.readiness.callback", allocationsPerOperation(count) { count in
        let (a, b) = socketPair()
        defer { close(a); close(b) }
        var left = count
        var byte: UInt8 = 0
        let ping = try! loop.io(FileDescriptor(rawValue: a), .read) { watcher, _ in
            precondition(read(watcher.descriptor.rawValue, &byte, 1) == 1)
            left -= 1
            if left == 0 { return watcher.stop() }
            precondition(write(watcher.descriptor.rawValue, &byte, 1) == 1)
        }
        let pong = try! loop.io(FileDescriptor(rawValue: b), .read) { watcher, _ in
            if read(watcher.descriptor.rawValue, &byte, 1) == 1 { precondition(write(watcher.descriptor.rawValue, &byte, 1) == 1) }
        }
        precondition(write(a, "x", 1) == 1)
        while ping.isActive { loop.run(.once) }
        pong.stop()
    } / 2) // two callbacks per round trip
    report("epoll.readiness.callback", allocationsPerOperation(count) { count in
        let (a, b) = socketPair()
        defer { close(a); close(b) }
        var left = count
        var byte: UInt8 = 0
        var done = false
        let ping = try! epoll.watch(FileDescriptor(rawValue: a), .read) { watch, _ in
            precondition(read(a, &byte, 1) == 1)
            left -= 1
            if left == 0 { done = true; return watch.cancel() }
            precondition(write(a, &byte, 1) == 1)
        }
        let pong = try! epoll.watch(FileDescriptor(rawValue: b), .read) { _, _ in
            if read(b, &byte, 1) == 1 { precondition(write(b, &byte, 1) == 1) }
        }
        precondition(write(a, "x", 1) == 1)
        while !done { epoll.runOnce() }
        _ = ping
        pong.cancel()
    } / 2)

    // Async: two tasks on the loop's executor, await readable / read / write.
    report("ev.async.round-trip", try asyncRoundTrips(count, loop: loop))
    report("epoll.async.round-trip", try asyncRoundTrips(count, loop: epoll))
    return 0
}

/// Allocations per round trip of two tasks on `loop`'s executor, each
/// awaiting readability, reading a byte and writing it back.
private func asyncRoundTrips<L: EventLoop>(_ count: Int, loop: L) throws -> Double {
    try loop.run { executor in
        func trips(_ count: Int) async throws {
            let (a, b) = socketPair()
            let ping = AsyncSocket(adopting: SocketDescriptor(a), peer: nil, loop: executor)
            let pong = AsyncSocket(adopting: SocketDescriptor(b), peer: nil, loop: executor)
            let byte = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
            defer { byte.deallocate() }
            byte[0] = 120
            async let echoing: Void = {
                let echoByte = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
                defer { echoByte.deallocate() }
                while try await pong.read(into: echoByte) == 1 {
                    try await pong.write(UnsafeRawBufferPointer(echoByte))
                }
                pong.close()
            }()
            for _ in 0..<count {
                try await ping.write(UnsafeRawBufferPointer(byte))
                let got = try await ping.read(into: byte)
                precondition(got == 1)
            }
            ping.close()
            try await echoing
        }
        try await trips(max(1, count / 10))
        let before = readCounter!()
        try await trips(count)
        return Double(readCounter!() - before) / Double(count)
    }
}
