import CBenchmarks
import Glibc
import NIOCore
import NIOPosix
import Synchronization

// SwiftNIO doing the same work, where it has the operation: timers
// (`scheduleTask`), ping-pong over a socketpair (two channels and their
// pipelines on one event loop), cross-thread wake-ups (`execute`). Its
// event loop is a thread of its own; it is pinned to the loop's CPU.

/// Counts on the event loop's thread only (every closure that touches it
/// runs there), so it needs no lock.
final class LoopCounter: @unchecked Sendable {
    var value = 0
    var state: UInt32 = 0
}

/// Runs `body` with a one-thread SwiftNIO event loop pinned to `cpu`, then shuts it down.
func withNIOLoop<T>(pinnedTo cpu: Int32, _ body: (any NIOCore.EventLoop) -> T) -> T {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    defer { try? group.syncShutdownGracefully() }
    let loop = group.next()
    try! loop.submit { _ = cbench_pin_to_cpu(cpu) }.wait()
    return body(loop)
}

/// `count` random timers in [0, 1 ms], all scheduled from the loop, run until all fired.
public func nioTimers(count: Int, seed: UInt32, loopCPU: Int32) -> Double {
    withNIOLoop(pinnedTo: loopCPU) { loop in
        let counter = LoopCounter()
        counter.state = seed
        let done = loop.makePromise(of: Void.self)
        let start = cbench_now()
        loop.execute {
            for _ in 0..<count {
                let delay = cbench_timer_delay(&counter.state)
                loop.scheduleTask(in: .nanoseconds(Int64(delay * 1e9))) {
                    counter.value += 1
                    if counter.value == count { done.succeed() }
                }
            }
        }
        try! done.futureResult.wait()
        return cbench_now() - start
    }
}

/// Writes back every byte it reads; the initiator counts round trips.
final class PingPongHandler: ChannelInboundHandler, @unchecked Sendable {
    // Sendable: used only on its channel's event loop.
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let initiator: Bool
    let count: Int
    let done: EventLoopPromise<Void>?
    var trips = 0

    init(initiator: Bool, count: Int, done: EventLoopPromise<Void>?) {
        self.initiator = initiator
        self.count = count
        self.done = done
    }

    func channelActive(context: ChannelHandlerContext) {
        if initiator { send(context) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if initiator {
            trips += 1
            if trips == count { done?.succeed(); return }
        }
        send(context)
    }

    private func send(_ context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 1)
        buffer.writeInteger(UInt8(1))
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }
}

/// `count` one-byte round trips over a socketpair, both ends channels on one loop.
public func nioPingPong(count: Int, loopCPU: Int32) -> Double {
    withNIOLoop(pinnedTo: loopCPU) { loop in
        var fds: [Int32] = [0, 0]
        precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let done = loop.makePromise(of: Void.self)
        let echo = try! ClientBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(PingPongHandler(initiator: false, count: count, done: nil))
                }
            }
            .withConnectedSocket(fds[1]).wait()
        let start = cbench_now()
        let initiator = try! ClientBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(PingPongHandler(initiator: true, count: count, done: done))
                }
            }
            .withConnectedSocket(fds[0]).wait()
        try! done.futureResult.wait()
        let elapsed = cbench_now() - start
        try? initiator.close().wait()
        try? echo.close().wait()
        return elapsed
    }
}

/// `count` wake-ups through `EventLoop.execute` from a thread on another CPU, each waiting for its job.
public func nioCrossThread(count: Int, loopCPU: Int32, senderCPU: Int32) -> Double {
    withNIOLoop(pinnedTo: loopCPU) { loop in
        let flags = Flags()
        let thread = pinnedThread(cpu: senderCPU) {
            let start = cbench_now()
            for i in 1...count {
                loop.execute { flags.acknowledged.add(1, ordering: .releasing) }
                while flags.acknowledged.load(ordering: .acquiring) < i {}
            }
            flags.elapsed.store((cbench_now() - start).bitPattern, ordering: .relaxed)
        }
        thread.join()
        return Double(bitPattern: flags.elapsed.load(ordering: .relaxed))
    }
}
