import EventCore

extension AsyncSocket {
    /// Connects to `host` by name: resolves it with `resolver`, then tries
    /// its addresses in turn, each for at most `attemptTimeout`, and returns
    /// the first connection made (as `socket.create_connection` and SwiftNIO's
    /// `ClientBootstrap` do, without RFC 8305's staggering).
    ///
    /// Call it from a task on the resolver's loop; the task's deadline
    /// (``/EventCore/withTimeout(_:_:)``) bounds the whole of it, lookup included.
    ///
    /// - Parameters:
    ///   - host: a name, or a numeric address.
    ///   - port: the port to connect to.
    ///   - resolver: the resolver that looks the name up, on the loop the socket will use.
    ///   - attemptTimeout: how long one address may take to accept; nil
    ///     waits as long as the kernel does.
    /// - Throws: the lookup's ``/EventCore/EventLoopError`` (``/EventCore/EventLoopError/Code/nameResolution(_:)``);
    ///   if no address accepted, the attempt's error (with more than one, the
    ///   last one's code, its detail naming every attempt); `CancellationError`.
    nonisolated(nonsending) public static func connect<L: EventLoop>(
        toHost host: String, port: UInt16, using resolver: NameResolver<L>, attemptTimeout: Duration? = .seconds(10)
    ) async throws -> AsyncSocket {
        let addresses = try await resolver.resolve(host, port: port)
        var failures: [String] = []
        var last: (any Error)?
        for address in addresses {
            do {
                return try await AsyncSocket.connect(to: address, on: resolver.loop.executor, timeout: attemptTimeout)
            } catch let error as EventLoopError {
                failures.append("\(address): \(error.errno.map { "\($0.symbolicName)" } ?? (error.code == .timedOut ? "timed out" : "\(error)"))")
                last = error
            }
        }
        if failures.count == 1, let last { throw last }
        guard let error = last as? EventLoopError else { throw last ?? EventLoopError(.nameResolution(.noAddress), operation: "resolve(\(host))") }
        throw EventLoopError(error.code, descriptor: nil, operation: "connect(\(host):\(port))",
                             detail: "tried \(failures.count) address\(failures.count == 1 ? "" : "es"): \(failures.joined(separator: "; "))")
    }
}
