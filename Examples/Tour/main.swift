// ev-tour: libev's watchers at work, one after another, in under two seconds.
//
//     swift run ev-tour
//
// Each step prints what happened and how long it took on this machine.
import EV
import EventCore
import Foundation
import Glibc

func log(_ text: String, since start: ContinuousClock.Instant) {
    let elapsed = start.duration(to: .now) / .milliseconds(1)
    print(String(format: "%7.1f ms  %@", elapsed, text))
}

// libev counts its timers from the loop's cached time, taken when it is made.
let start = ContinuousClock.now
let loop = try Loop()
print("libev \(Loop.libevVersion.major).\(Loop.libevVersion.minor), backend \(loop.backend), recommended \(Backend.recommended)")

// A timer, fire-and-forget: nothing keeps a reference, it still fires.
try loop.timer(after: .milliseconds(100)) { _ in log("timer: 100 ms after start", since: start) }

// A repeating timer that stops itself after three ticks.
var ticks = 0
try loop.timer(after: .milliseconds(200), repeat: .milliseconds(100)) { timer in
    ticks += 1
    log("repeating timer: tick \(ticks)", since: start)
    if ticks == 3 { timer.stop() }
}

// An io watcher: readiness of one end of a socketpair, fed by a timer.
var fds: [Int32] = [-1, -1]
_ = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds)
try loop.io(FileDescriptor(rawValue: fds[0]), .read) { watcher, events in
    var buffer = [UInt8](repeating: 0, count: 64)
    let n = read(watcher.descriptor.rawValue, &buffer, buffer.count)
    log("io (\(events)): read \"\(String(decoding: buffer[..<max(n, 0)], as: UTF8.self))\"", since: start)
    try? watcher.stopAndClose()
    close(fds[1])
}
try loop.timer(after: .milliseconds(300)) { _ in _ = write(fds[1], "hello", 5) }

// A signal, sent to ourselves, handled on the loop's thread.
try loop.signal(SIGUSR1) { watcher in
    log("signal \(watcher.signal) (SIGUSR1) handled on the loop's thread", since: start)
    watcher.stop()
}
try loop.timer(after: .milliseconds(400)) { _ in kill(getpid(), SIGUSR1) }

// Work submitted from another thread runs on the loop's thread.
let executor = loop.executor
let wakeup = loop.async { watcher in
    log("async: woken by another thread", since: start)
    watcher.stop()
}
let sender = wakeup.sender
let other = Thread {
    usleep(500_000)
    sender.send()
    try? executor.execute { print("           executor: a closure submitted by the other thread") }
}
other.start()

// A periodic watcher on the wall clock: the next whole 100 ms after 0.6 s.
let soon = Loop.time().advanced(by: .milliseconds(600)).sinceEpoch
let at = WallClock.Instant(sinceEpoch: .milliseconds(100) * (Int64(soon / .milliseconds(100)) + 1))
loop.periodic(at: at) { periodic in
    log("periodic: at wall-clock time \(String(format: "%.1f", periodic.at.sinceEpoch / .seconds(1)))", since: start)
}

// Idle: runs only when nothing else is pending; here it counts once and stops.
try loop.timer(after: .milliseconds(800)) { timer in
    timer.loop?.idle { idle in
        log("idle: the loop had nothing else to do", since: start)
        idle.stop()
    }
}

// A stat watcher noticing a file being written and removed.
let path = "/tmp/ev-tour-\(getpid())"
loop.stat(path, interval: .milliseconds(50)) { watcher in
    log("stat: \(path) is \(watcher.current.map { "\($0.size) bytes" } ?? "gone")", since: start)
    if watcher.current == nil { watcher.stop() }
}
try loop.timer(after: .milliseconds(900)) { _ in
    let fd = open(path, O_CREAT | O_WRONLY, 0o644)
    _ = write(fd, "data", 4)
    close(fd)
}
try loop.timer(after: .milliseconds(1200)) { _ in unlink(path) }

loop.run()
log("run() returned: no active watcher left, \(loop.iteration) iterations", since: start)
