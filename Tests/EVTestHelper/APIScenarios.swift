import Dispatch
import EV
import EventCore
import Glibc
import Synchronization
import TestSupport

/// Spawns `/bin/sh -c script`, its standard input `input` if given;
/// returns its pid (a child of this process).
func spawnShell(_ script: String, input: Int32? = nil) -> pid_t {
    var pid: pid_t = 0
    let words: [String] = ["/bin/sh", "-c", script]
    let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if let input { posix_spawn_file_actions_adddup2(&actions, input, 0) }
    precondition(posix_spawn(&pid, "/bin/sh", &actions, nil, argv, environ) == 0, "posix_spawn failed")
    return pid
}

/// The default loop on a thread of its own: a child's status changes as an
/// async sequence, a child's exit awaited, and a child watcher moved to
/// another child with `set(pid:trace:)`.
func childStatusesOnAThread(_ arguments: [String]) throws -> Int32 {
    let thread = try LoopThread.defaultLoop()
    let lines = LockedValue<[String]>([])
    let done = DispatchSemaphore(value: 0)
    try thread.executor.execute { loop in
        let executor = loop.executor
        lines.withLock { $0.append("default-loop=\(loop.isDefault) on-loop=\(executor.isCurrent)") }
        // A watcher made for one child, then moved to another, with tracing.
        let first = spawnShell("exit 1")
        let second = spawnShell("sleep 0.1; exit 4")
        let moved = ChildWatcher(loop: loop, pid: first) { watcher in
            lines.withLock { $0.append("moved pid-match=\(watcher.receivedPID == second) \(watcher.status)") }
            watcher.stop()
        }
        moved.set(pid: second, trace: true)
        lines.withLock { $0.append("set pid=\(moved.pid == second) trace=\(moved.trace)") }
        do { try moved.start() } catch { lines.withLock { $0.append("start failed: \(error)") } }
        Task(executorPreference: executor) {
            do {
                // It exits once the parent has seen it continue (an exit
                // before the parent's waitpid would replace the "continued").
                let release = try makePipe(nonBlocking: false)
                let stopping = spawnShell("kill -STOP $$; read line; exit 3", input: release[0])
                var seen: [String] = []
                for try await status in executor.childStatuses(stopping) {
                    seen.append("\(status)")
                    if case .stopped = status { kill(stopping, SIGCONT) }
                    if case .continued = status { writeString(release[1], "go\n") }
                }
                release.forEach { close($0) }
                lines.withLock { $0.append("statuses " + seen.joined(separator: ", ")) }
                let exit = try await executor.childExit(spawnShell("exit 5"))
                lines.withLock { $0.append("childExit \(exit)") }
            } catch {
                lines.withLock { $0.append("error \(error)") }
            }
            done.signal()
        }
    }
    guard done.wait(timeout: .now() + 20) == .success else {
        print("timed out: \(lines.withLock { $0 })")
        return 1
    }
    usleep(300_000) // the moved watcher's child ends after 0.1 s
    thread.stop()
    thread.join()
    for line in lines.withLock({ $0 }).sorted() { print(line) }
    return 0
}

/// `sleep(until:)` follows the wall clock: under libfaketime (the test sets
/// it up), the clock jumps two minutes forward half a second in, and a sleep
/// until one minute from now ends then - not a minute later.
func wallClockJump(_ arguments: [String]) throws -> Int32 {
    guard let file = arguments.first else { return 64 }
    let loop = try Loop()
    let start = monotonicNow()
    let wall = Loop.time()
    // Keeps the loop iterating, so that it sees the faked jump (a real one
    // wakes it through the kernel's timerfd notification).
    try loop.timer(after: .milliseconds(50), repeat: .milliseconds(50)) { _ in }.keepAlive = false
    try loop.timer(after: .milliseconds(500)) { _ in
        writeFile(file, "+120")
    }
    try failAfter(30, on: loop, "the wall-clock sleep")
    let slept = try loop.run { executor in
        try await executor.sleep(until: wall.advanced(by: .seconds(60)))
        return monotonicNow() - start
    }
    print("woke after \(slept < 5 ? "less than 5" : String(slept)) s; wall clock moved \(Int(wall.duration(to: Loop.time()) / .seconds(60))) min")
    return 0
}


/// The sender a signal handler uses (C handlers capture nothing).
nonisolated(unsafe) var handlerSender: AsyncWatcher.Sender?
let handlerSends = Atomic(0)

/// An AsyncWatcher's sender called from a signal handler, 1,000 times a
/// second, while the loop stops and starts the watcher over and over: no
/// deadlock, no crash; and once the toggling ends with the watcher started,
/// the handler's next send runs the callback. Whether a callback also came
/// during the toggling is up to the scheduler (a loaded machine runs the
/// 1 ms timer's due callbacks back to back, each stopping the watcher and
/// dropping a pending send), so it is not what is checked.
func sendFromSignalHandler(_ arguments: [String]) throws -> Int32 {
    let loop = try Loop()
    var callbacks = 0
    var togglingDone = false
    var callbacksAfterToggling = 0
    let watcher = loop.async { watcher in
        callbacks += 1
        if togglingDone {
            callbacksAfterToggling += 1
            watcher.stop() // the loop's last watcher: run() returns
        }
    }
    handlerSender = watcher.sender
    var action = sigaction()
    action.__sigaction_handler.sa_handler = { _ in
        if handlerSender?.send() == true { handlerSends.add(1, ordering: .relaxed) }
    }
    action.sa_flags = SA_RESTART
    sigaction(SIGALRM, &action, nil)
    var interval = itimerval(it_interval: timeval(tv_sec: 0, tv_usec: 1000), it_value: timeval(tv_sec: 0, tv_usec: 1000))
    setitimer(__itimer_which_t(ITIMER_REAL.rawValue), &interval, nil)
    var toggles = 0
    try loop.timer(after: .milliseconds(1), repeat: .milliseconds(1)) { timer in
        watcher.stop()
        watcher.start()
        toggles += 1
        if toggles == 1000 {
            timer.stop()
            togglingDone = true // the watcher stays started: the next send ends the run
        }
    }
    try failAfter(30, on: loop, "the signal-handler sends")
    loop.run()
    interval = itimerval()
    setitimer(__itimer_which_t(ITIMER_REAL.rawValue), &interval, nil)
    watcher.stop()
    print("toggles=\(toggles) callbacks after toggling=\(callbacksAfterToggling) sends>0=\(handlerSends.load(ordering: .relaxed) > 0)")
    _ = callbacks
    return 0
}
