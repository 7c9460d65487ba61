import EventCore
import EV
import Glibc
import Synchronization
import Testing
import TestSupport

@Suite("AsyncWatcher")
struct AsyncWatcherTests {
    /// Sends coalesce, so the count lives in an atomic the senders bump before
    /// each send; the property is that no wake-up is lost: after the last
    /// send, the callback runs and sees every increment.
    @Test func twoThreadsSendingAMillionTimesEachLoseNoWakeUp() throws {
        let loop = try Loop()
        let sent = Atomic<Int>(0)
        let total = 2 * 1_000_000
        var callbacks = 0
        var seen = 0
        let watcher = loop.async { watcher in
            callbacks += 1
            seen = sent.load(ordering: .acquiring)
            if seen == total { watcher.stop() }
        }
        let sender = watcher.sender
        let threads = (0..<2).map { _ in
            try! PlainThread {
                for _ in 0..<1_000_000 {
                    sent.add(1, ordering: .releasing)
                    sender.send()
                }
            }
        }
        #expect(runUntilDone(loop, timeout: 120))
        threads.forEach { $0.join() }
        #expect(seen == total)
        #expect(callbacks >= 1 && callbacks <= total)
    }

    @Test func aSendToAStoppedWatcherOrADestroyedLoopDoesNothing() throws {
        var sender: AsyncWatcher.Sender?
        do {
            let loop = try Loop()
            let watcher = loop.async { _ in }
            sender = watcher.sender
            #expect(sender!.send() == true)
            #expect(watcher.isSendPending)
            watcher.stop()
            #expect(sender!.send() == false)
            watcher.start()
            #expect(sender!.send() == true)
        }
        #expect(sender!.send() == false, "the loop is gone; the send is refused, not a crash")
    }

    @Test func pendingSendsRunTheCallbackOnce() throws {
        let loop = try Loop()
        var callbacks = 0
        let watcher = loop.async { watcher in
            callbacks += 1
            watcher.stop()
        }
        for _ in 0..<10 { watcher.sender.send() }
        #expect(runUntilDone(loop))
        #expect(callbacks == 1)
    }

    /// `ev_async_send` is async-signal-safe, and so is the sender: a 1 kHz
    /// SIGALRM handler sends while the loop stops and starts the watcher
    /// 1,000 times (the helper process, as signals are process-wide); then,
    /// with the watcher left started, a send from the handler runs the
    /// callback. (It once also asked for a callback during the toggling,
    /// which a loaded machine need not give: "callbacks>0=false".)
    @Test func aSenderCalledFromASignalHandlerNeitherDeadlocksNorCrashes() throws {
        let output = try runHelper("send-from-signal-handler", timeout: 60)
        #expect(output.exitCode == 0, "\(output)")
        #expect(output.standardOutput == "toggles=1000 callbacks after toggling=1 sends>0=true\n", "\(output)")
    }
}
