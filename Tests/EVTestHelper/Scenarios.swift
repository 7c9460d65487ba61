import EV
import Epoll
import EventCore
import Glibc
import TestSupport

/// A timer that ends the process if a scenario hangs.
func failAfter(_ seconds: Double, on loop: Loop, _ what: String) throws {
    let watchdog = try loop.timer(after: .seconds(seconds)) { _ in
        print("timeout: \(what)")
        exit(3)
    }
    watchdog.keepAlive = false
}

/// Fork with the loop active. The child reinitialises the loop and proves it
/// works (fork watcher, timer, an echo over a socketpair); meanwhile the parent
/// counts its own io events, which must be exactly the ones it caused.
func forkEcho(_ arguments: [String]) throws -> Int32 {
    let backend: Backend = arguments.first == "poll" ? .poll : .epoll
    let loop = try Loop(backends: backend)
    let (x, y) = try makeSocketPair()
    let (pa, pb) = try makeSocketPair()
    var forkCallbacks = 0
    loop.fork { _ in forkCallbacks += 1 }.keepAlive = false
    var parentReads = 0
    var parentSpurious = 0
    var parentBytes = 0
    let parentWatcher = try loop.io(FileDescriptor(rawValue: pa), .read) { watcher, _ in
        let text = readAvailable(pa)
        if text.isEmpty { parentSpurious += 1 } else { parentReads += 1; parentBytes += text.utf8.count }
        if parentBytes == 20 { watcher.stop() }
    }
    // One iteration before the fork, so the kernel state exists and is shared.
    loop.run(.noWait)

    let child = fork()
    if child == 0 {
        try loop.reinitializeAfterFork()
        parentWatcher.stop()
        var echoed = false
        try loop.timer(after: .milliseconds(50)) { _ in writeString(x, "ping") }
        try loop.io(FileDescriptor(rawValue: y), .read) { _, _ in
            if readAvailable(y) == "ping" { writeString(y, "pong") }
        }
        try loop.io(FileDescriptor(rawValue: x), .read) { watcher, _ in
            if readAvailable(x) == "pong" {
                echoed = true
                watcher.loop?.break(.all)
            }
        }
        try failAfter(5, on: loop, "child echo")
        loop.run()
        print("child fork-callbacks=\(forkCallbacks) echoed=\(echoed)")
        fflush(nil)
        // _exit, as a forked child should: the parent's exit-time work (and,
        // under AddressSanitizer, a leak check of the parent's memory) is not the child's.
        _exit(echoed && forkCallbacks == 1 ? 0 : 1)
    }

    var sent = 0
    try loop.timer(after: .milliseconds(10), repeat: .milliseconds(10)) { timer in
        writeString(pb, "m")
        sent += 1
        if sent == 20 { timer.stop() }
    }
    try failAfter(10, on: loop, "parent messages")
    loop.run()
    var status: Int32 = 0
    waitpid(child, &status, 0)
    let childStatus = ChildWatcher.Status(waitStatus: status)
    print("parent spurious=\(parentSpurious) bytes=\(parentBytes) fork-callbacks=\(forkCallbacks) child=\(childStatus) reads=\(parentReads)")
    // Every byte arrives, none twice and no wake-up finds nothing; a loaded
    // machine may deliver two writes in one read, so reads are not counted.
    return parentReads >= 1 && parentBytes == 20 && parentSpurious == 0 && forkCallbacks == 0
        && childStatus == .exited(code: 0) ? 0 : 1
}

/// Real children on the default loop: an exit code, a kill, and a traced
/// stop / continue / exit, plus a watcher for any child.
func childStatus(_ arguments: [String]) throws -> Int32 {
    let loop = try Loop.defaultLoop()
    var lines: [String] = []
    var anyChild = 0
    let any = try loop.child(0) { _ in anyChild += 1 }
    any.keepAlive = false

    let exiting = fork()
    if exiting == 0 {
        usleep(50_000)
        _exit(7)
    }
    try loop.child(exiting) { watcher in
        lines.append("exiting pid-match=\(watcher.receivedPID == exiting) \(watcher.status)")
        watcher.stop()
    }

    let killed = fork()
    if killed == 0 {
        while true { pause() }
    }
    try loop.child(killed) { watcher in
        lines.append("killed pid-match=\(watcher.receivedPID == killed) \(watcher.status)")
        watcher.stop()
    }
    kill(killed, SIGKILL)

    // The traced child exits only once the parent has seen it continue:
    // an exit before the parent's waitpid would replace the "continued"
    // (a fixed sleep in the child was a guess a loaded machine could beat).
    let release = try makePipe(nonBlocking: false)
    let traced = fork()
    if traced == 0 {
        raise(SIGSTOP)
        var byte: UInt8 = 0
        _ = read(release[0], &byte, 1)
        _exit(0)
    }
    try loop.child(traced, trace: true) { watcher in
        lines.append("traced \(watcher.status)")
        switch watcher.status {
        case .stopped: kill(traced, SIGCONT)
        case .continued: writeString(release[1], "x")
        case .exited, .signaled: watcher.stop()
        }
    }
    try failAfter(10, on: loop, "children")
    loop.run()
    lines.sort()
    for line in lines { print(line) }
    print("any-child callbacks=\(anyChild)")
    return 0
}

/// The default loop is one object, owns SIGCHLD, and is created anew after it is dropped.
func defaultLoop(_ arguments: [String]) throws -> Int32 {
    var first: Loop? = try Loop.defaultLoop()
    let again = try Loop.defaultLoop()
    print("same-object=\(first === again) is-default=\(first!.isDefault)")
    let other = try Loop()
    print("other-is-default=\(other.isDefault)")
    do {
        try other.signal(SIGCHLD) { _ in }
        print("sigchld-on-other=accepted")
    } catch {
        print("sigchld-on-other=\(error)")
    }
    do {
        try other.child(0) { _ in }
        print("child-on-other=accepted")
    } catch {
        print("child-on-other=\(error)")
    }
    first = nil
    let third = try Loop.defaultLoop()
    print("same-while-referenced=\(third === again)")
    return 0
}

/// Dropping every reference destroys the default loop; the next call makes a new one.
func defaultLoopRecreated(_ arguments: [String]) throws -> Int32 {
    weak var dropped: Loop?
    do {
        let loop = try Loop.defaultLoop()
        dropped = loop
        try loop.timer(after: .zero) { _ in }
        loop.run()
    }
    let fresh = try Loop.defaultLoop()
    var ran = false
    try fresh.timer(after: .zero) { _ in ran = true }
    fresh.run()
    print("dropped-destroyed=\(dropped == nil) fresh-runs=\(ran)")
    return 0
}

/// Makes libev's epoll_wait fail (its descriptor closed behind its back) to
/// show the message of the system-error handler.
func systemErrorHandler(_ arguments: [String]) throws -> Int32 {
    let loop = try Loop(backends: .epoll)
    try loop.timer(after: .milliseconds(10)) { _ in }
    loop.run(.noWait) // apply every pending epoll_ctl first, so epoll_wait is what fails
    // libev's epoll descriptor is the one /proc shows as an eventpoll instance.
    for fd in 3..<64 {
        var buffer = [CChar](repeating: 0, count: 256)
        let n = readlink("/proc/self/fd/\(fd)", &buffer, 255)
        let target = String(decoding: buffer[..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if target.contains("eventpoll") { close(Int32(fd)) }
    }
    loop.run()
    print("the loop survived a closed epoll descriptor")
    return 1
}

/// The childExit await on the default loop, for an exiting and a killed child.
func childExitAwait(_ arguments: [String]) throws -> Int32 {
    let loop = try Loop.defaultLoop()
    let statuses = try loop.run { executor in
        let exiting = fork()
        if exiting == 0 {
            usleep(20_000)
            _exit(3)
        }
        let first = try await executor.childExit(exiting)
        let killed = fork()
        if killed == 0 {
            while true { pause() }
        }
        let waiter = Task(executorPreference: executor) { try await executor.childExit(killed) }
        try await executor.sleep(for: .milliseconds(20))
        kill(killed, SIGKILL)
        let second = try await waiter.value
        return [first, second]
    }
    for status in statuses { print("status \(status)") }
    return 0
}

/// The fork scenario through the loops' common protocol, on either loop:
/// the child reinitialises and echoes over a socketpair; the parent counts
/// its own reads, which must be exactly its 20 messages.
func forkCommon(_ arguments: [String]) throws -> Int32 {
    let loop: any EventLoop = arguments.first == "epoll" ? try EpollLoop() : try Loop()
    let (x, y) = try makeSocketPair()
    let (pa, pb) = try makeSocketPair()
    var parentReads = 0
    var parentSpurious = 0
    let watch = try loop.watchReadiness(FileDescriptor(rawValue: pa), .read) { _ in
        if readAvailable(pa).isEmpty { parentSpurious += 1 } else { parentReads += 1 }
    }
    // One iteration first, so the kernel state exists before the fork.
    _ = loop.schedule(after: .zero) { loop.stop() }
    loop.runForever()

    let child = fork()
    if child == 0 {
        try loop.reinitializeAfterFork()
        watch.cancel()
        var echoed = false
        _ = try loop.watchReadiness(FileDescriptor(rawValue: y), .read) { _ in
            if readAvailable(y) == "ping" { writeString(y, "pong") }
        }
        _ = try loop.watchReadiness(FileDescriptor(rawValue: x), .read) { _ in
            if readAvailable(x) == "pong" {
                echoed = true
                loop.stop()
            }
        }
        _ = loop.schedule(after: .milliseconds(50)) { writeString(x, "ping") }
        _ = loop.schedule(after: .seconds(5)) { loop.stop() }
        loop.runForever()
        print("child echoed=\(echoed)")
        fflush(nil)
        _exit(echoed ? 0 : 1)
    }

    var sent = 0
    func send() {
        writeString(pb, "m")
        sent += 1
        if sent < 20 { _ = loop.schedule(after: .milliseconds(10), send) }
    }
    _ = loop.schedule(after: .milliseconds(10), send)
    func check() {
        if parentReads == 20 { loop.stop() } else { _ = loop.schedule(after: .milliseconds(5), check) }
    }
    check()
    let safety = loop.schedule(after: .seconds(10)) { loop.stop() }
    loop.runForever()
    safety.cancel() // the closure holds the loop: cancel, or loop and timer keep each other alive
    watch.cancel()
    var status: Int32 = 0
    waitpid(child, &status, 0)
    print("parent reads=\(parentReads) spurious=\(parentSpurious) child=\(ChildWatcher.Status(waitStatus: status))")
    return parentReads == 20 && parentSpurious == 0 && status == 0 ? 0 : 1
}
