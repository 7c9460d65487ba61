import EventCore

/// A thread pinned to one CPU, for the senders of the cross-thread benchmarks.
func pinnedThread(cpu: Int32, _ body: @escaping @Sendable () -> Void) -> PlainThread {
    try! PlainThread(cpu: cpu, body)
}
