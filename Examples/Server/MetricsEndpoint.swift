import EV
import EventCore
import EventLoopServices
import Prometheus

/// `GET /metrics` on a loop of its own: the Prometheus text of `registry`
/// (swift-prometheus, which swift-metrics reports to). One request per
/// connection, each answered in a task; a head over 16 KiB or not complete
/// within 5 s is dropped. It stops (its listener closes, its connections
/// end) with its group's graceful shutdown, as a `ServiceGroup` service.
final class MetricsEndpoint: Sendable {
    let group: EventLoopGroup<Loop>
    let address: SocketAddress

    init(on address: SocketAddress, registry: PrometheusCollectorRegistry) throws {
        group = try EventLoopGroup(loops: 1) { try Loop() }
        let listener = try group.listeners(on: address)[0]
        self.address = try listener.localAddress()
        let group = self.group
        try group.executors[0].execute { loop in
            let executor = loop.executor
            let accepting = Task(executorPreference: executor) {
                let listener = AsyncListener(adopting: listener, loop: executor)
                defer { listener.close() }
                while let socket = try? await listener.accept() {
                    Task(executorPreference: executor) { await Self.answer(socket, registry) }
                }
            }
            group.onGracefulShutdown { _ in accepting.cancel() }
        }
    }

    private static func answer(_ socket: AsyncSocket, _ registry: PrometheusCollectorRegistry) async {
        defer { socket.close() }
        var head: [UInt8] = []
        let complete: Bool? = try? await withTimeout(.seconds(5)) {
            while head.count <= 16 << 10 {
                let chunk = try await socket.read(maximum: 4096)
                if chunk.isEmpty { return false }
                head += chunk
                if head.count >= 4 && head.suffix(4).elementsEqual("\r\n\r\n".utf8) { return true }
            }
            return false
        }
        guard complete == true else { return }
        let line = head.prefix { $0 != UInt8(ascii: "\r") }
        let found = line.starts(with: "GET /metrics ".utf8) || line.starts(with: "GET /metrics?".utf8)
        let body = found ? registry.emitToBuffer() : Array("not found: GET /metrics\n".utf8)
        let status = found ? "200 OK" : "404 Not Found"
        let type = found ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8"
        let response = Array("HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8) + body
        try? await socket.write(response)
    }
}
