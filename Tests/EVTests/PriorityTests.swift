import EV
import Glibc
import Testing
import TestSupport

@Suite("Priorities, feeding and invoking")
struct PriorityTests {
    @Test func pendingCallbacksRunInPriorityOrder() throws {
        let loop = try Loop()
        var order: [Int] = []
        var watchers: [IdleWatcher] = []
        for priority in [0, -2, 2, 1, -1] {
            let watcher = IdleWatcher(loop: loop) { watcher in order.append(watcher.priority) }
            watcher.priority = priority
            watchers.append(watcher)
        }
        for watcher in watchers { watcher.feed(.custom) }
        loop.run(.noWait)
        #expect(order == [2, 1, 0, -1, -2])
    }

    @Test func priorityIsClampedAndSettingItKeepsAWatcherActive() throws {
        let loop = try Loop()
        try withSocketPair { a, b in
            var fired = false
            let watcher = try loop.io(FileDescriptor(rawValue: a), .read) { watcher, _ in
                fired = true
                watcher.stop()
            }
            watcher.priority = 7
            #expect(watcher.priority == 2)
            #expect(watcher.isActive)
            watcher.priority = -9
            #expect(watcher.priority == -2)
            writeString(b, "x")
            #expect(runUntilDone(loop))
            #expect(fired)
        }
    }

    @Test func changingThePriorityOfAPendingWatcherKeepsTheEvent() throws {
        let loop = try Loop()
        var received: Events = []
        let watcher = CheckWatcher(loop: loop) { watcher in received = watcher.receivedEvents }
        watcher.feed(.custom)
        watcher.priority = 1
        #expect(watcher.isPending)
        loop.run(.noWait)
        #expect(received == .custom)
    }

    @Test func feedWorksOnAStoppedWatcherAndKeepsItAlive() throws {
        let loop = try Loop()
        weak var weakWatcher: TimerWatcher?
        var received: Events = []
        do {
            let timer = try TimerWatcher(loop: loop, after: .seconds(60)) { timer in received = timer.receivedEvents }
            timer.feed([.timer, .custom])
            #expect(timer.isPending)
            #expect(!timer.isActive)
            weakWatcher = timer
        }
        #expect(weakWatcher != nil, "a pending watcher is held by its loop")
        loop.run(.noWait)
        #expect(received == [.timer, .custom])
        #expect(weakWatcher == nil, "and let go once its callback has run")
    }

    @Test func invokeCallsTheCallbackAtOnce() throws {
        let loop = try Loop()
        var calls: [Events] = []
        let watcher = try withSocketPair { a, _ in
            let watcher = IOWatcher(loop: loop, descriptor: FileDescriptor(rawValue: a), events: .read) { _, events in calls.append(events) }
            watcher.invoke(.write)
            return watcher
        }
        #expect(calls == [.write])
        #expect(!watcher.isActive)
    }

    @Test func clearPendingReturnsTheEventsWithoutRunningTheCallback() throws {
        let loop = try Loop()
        var ran = false
        weak var weakWatcher: IdleWatcher?
        do {
            let watcher = IdleWatcher(loop: loop) { _ in ran = true }
            watcher.feed([.idle, .custom])
            #expect(watcher.clearPending() == [.idle, .custom])
            #expect(!watcher.isPending)
            #expect(watcher.clearPending() == [])
            weakWatcher = watcher
        }
        loop.run(.noWait)
        #expect(!ran)
        #expect(weakWatcher == nil)
    }

    @Test func eventsHaveReadableNames() {
        #expect(Events([.read, .write]).description == "read|write")
        #expect(Events.error.description == "error")
        #expect(Events().description == "none")
    }
}
