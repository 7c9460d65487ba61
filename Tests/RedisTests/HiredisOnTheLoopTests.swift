import Foundation
import CHiredis
import EV
import Epoll
import EventCore
import Redis
import Testing
import TestSupport

/// Which loop the client runs on.
enum Attachment: String, CaseIterable, CustomTestStringConvertible {
    /// ``RedisClient`` on libev's loop.
    case libev
    /// ``RedisClient`` on the epoll loop.
    case epoll

    var testDescription: String { rawValue }

    /// Runs `scenario` on a new loop of this kind; an error it throws is
    /// logged and ends the run.
    func run(limits: RedisLimits = RedisLimits(), password: String? = nil,
             _ scenario: @escaping (ScenarioRun) throws -> Void) throws -> [String] {
        switch self {
        case .libev: try ScenarioRun.run(try Loop(), limits: limits, password: password, scenario)
        case .epoll: try ScenarioRun.run(try EpollLoop(), limits: limits, password: password, scenario)
        }
    }
}

/// A scenario's view of its loop: make clients, log what happened, end.
final class ScenarioRun {
    let makeClient: (UInt16, Double?) throws -> AnyClient
    let stop: () -> Void
    let after: (Double, @escaping () -> Void) -> Void
    var log: [String] = []

    init(makeClient: @escaping (UInt16, Double?) throws -> AnyClient, stop: @escaping () -> Void, after: @escaping (Double, @escaping () -> Void) -> Void) {
        self.makeClient = makeClient
        self.stop = stop
        self.after = after
    }

    static func run<L: EventLoop>(_ loop: L, limits: RedisLimits, password: String?,
                                  _ scenario: @escaping (ScenarioRun) throws -> Void) throws -> [String] {
        let run = ScenarioRun(
            makeClient: { port, replyTimeout in
                let client = try RedisClient(loop: loop, host: "127.0.0.1", port: port, password: password,
                                             connectTimeout: .seconds(5), limits: limits)
                client.replyTimeout = replyTimeout.map { .seconds($0) }
                return AnyClient(send: client.send, close: client.close, onClose: { client.onClose = $0 }, keep: client)
            },
            stop: { loop.stop() },
            after: { seconds, work in _ = loop.schedule(after: .seconds(seconds), work) })
        let guardTimer = loop.schedule(after: .seconds(30)) { run.log.append("scenario timed out"); loop.stop() }
        do {
            try scenario(run)
        } catch {
            run.log.append("\(error)")
            loop.stop()
        }
        loop.runForever()
        guardTimer.cancel()
        loop.close()
        return run.log
    }
}

/// A client of either loop, for a scenario written once.
struct AnyClient {
    let send: ([String], @escaping (Result<RedisReply, RedisError>) -> Void) -> Void
    let close: () -> Void
    let onClose: (((RedisError?) -> Void)?) -> Void
    let keep: AnyObject
}

@Suite("Redis on the package's loops, against a real redis-server and hostile ones", .serialized)
struct HiredisOnTheLoopTests {
    @Test(arguments: Attachment.allCases)
    func setGetAndAPipelineOf10000Commands(_ attachment: Attachment) throws {
        let redis = try RedisServer()
        let log = try attachment.run { run in
            let client = try run.makeClient(redis.port, nil)
            client.onClose { run.log.append("closed: \($0.map { "\($0)" } ?? "cleanly")"); run.stop() }
            client.send(["SET", "greeting", "hello, 世界"]) { run.log.append("SET: \($0)") }
            client.send(["GET", "greeting"]) { run.log.append("GET: \($0)") }
            client.send(["GET", "missing"]) { run.log.append("GET missing: \($0)") }
            client.send(["NOSUCHCOMMAND"]) { result in
                if case .failure(let error) = result { run.log.append("error: \(error.kind) \(error.message.prefix(22))") }
            }
            // 10,000 commands sent in one turn of the loop: replies in order.
            var replies: [Int] = []
            for _ in 0..<10_000 {
                client.send(["INCR", "counter"]) { result in
                    replies.append((try? result.get())?.integer ?? -1)
                    if replies.count == 10_000 {
                        run.log.append("pipeline: \(replies == Array(1...10_000) ? "in order" : "out of order")")
                        client.send(["LRANGE", "nothing", "0", "-1"]) { run.log.append("LRANGE: \($0)") }
                        client.close()
                    }
                }
            }
        }
        #expect(log == [
            "SET: success(OK)", "GET: success(\"hello, 世界\")", "GET missing: success((nil))",
            "error: server ERR unknown command 'N", "pipeline: in order", "LRANGE: success([])", "closed: cleanly",
        ], "\(attachment)")
        #expect(try redis.cli(["GET", "counter"]) == "10000")
    }

    @Test(arguments: Attachment.allCases)
    func aRefusedConnectionFailsItsCommandsAndNamesTheServer(_ attachment: Attachment) throws {
        let port = try unusedPort()
        let log = try attachment.run { run in
            let client = try run.makeClient(port, nil)
            client.onClose { run.log.append("closed: \($0.map { "\($0)" } ?? "cleanly")"); run.stop() }
            client.send(["PING"]) { run.log.append("PING: \($0)") }
        }
        let server = "redis://127.0.0.1:\(port)"
        #expect(log == ["PING: failure(cannot connect to \(server): Connection refused)", "closed: cannot connect to \(server): Connection refused"],
                "\(attachment)")
    }

    @Test(arguments: Attachment.allCases)
    func theServerClosingTheConnectionFailsTheWaitingCommand(_ attachment: Attachment) throws {
        let redis = try RedisServer()
        let log = try attachment.run { run in
            let victim = try run.makeClient(redis.port, nil)
            let killer = try run.makeClient(redis.port, nil)
            // Three things happen, in any order: then the scenario is over.
            func note(_ line: String) {
                run.log.append(line)
                if run.log.count == 3 { run.stop() }
            }
            victim.onClose { note("victim closed: \($0.map { "\($0.kind): \($0.message)" } ?? "cleanly")") }
            victim.send(["CLIENT", "ID"]) { result in
                guard let id = (try? result.get())?.integer else { return run.log.append("no id: \(result)") }
                // Waits for a list nobody fills: the reply never comes.
                victim.send(["BLPOP", "never", "20"]) { result in
                    switch result {
                    case .success(let reply): note("BLPOP: \(reply)")
                    case .failure(let error): note("BLPOP: \(error.kind)")
                    }
                }
                run.after(0.1) {
                    killer.send(["CLIENT", "KILL", "ID", "\(id)"]) { note("KILL: \($0)"); killer.close() }
                }
            }
        }
        #expect(log.count == 3 && log.contains("KILL: success((integer) 1)") && log.contains("BLPOP: disconnected"),
                "\(attachment): \(log)")
        #expect(log.contains { $0.hasPrefix("victim closed: disconnected: ") }, "\(attachment): \(log)")
    }

    /// A TCP server that is not Redis: Python, answering each read with `answer` (or nothing).
    func startImpostor(answer: String?) throws -> (SpawnedProcess, UInt16) {
        let script = """
        import socket, sys
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        print(s.getsockname()[1], flush=True)
        held = []
        while True:
            c, _ = s.accept()
            held.append(c)
            c.recv(65536)
            if sys.argv[1] != "-":
                c.sendall(sys.argv[1].encode())
        """
        let impostor = try SpawnedProcess("/usr/bin/env", ["python3", "-c", script, answer ?? "-"])
        let port = UInt16(impostor.waitForOutput(containing: "\n").split(separator: "\n").first ?? "") ?? 0
        return (impostor, port)
    }

    @Test(arguments: Attachment.allCases)
    func aServerThatIsNotRedisEndsTheConnectionWithAProtocolError(_ attachment: Attachment) throws {
        let (impostor, port) = try startImpostor(answer: "HTTP/1.1 400 Bad Request\r\n\r\n")
        defer { impostor.send(SIGKILL); _ = try? impostor.wait(timeout: 5) }
        let log = try attachment.run { run in
            let client = try run.makeClient(port, nil)
            client.onClose { run.log.append("closed: \($0.map { "\($0.kind)" } ?? "cleanly")"); run.stop() }
            client.send(["PING"]) { result in
                if case .failure(let error) = result { run.log.append("PING: \(error.kind): \(error.message)") }
            }
        }
        #expect(log.count == 2 && log[0].hasPrefix("PING: protocolViolation: not Redis's protocol: Protocol error")
                && log[1] == "closed: protocolViolation", "\(attachment): \(log)")
    }

    @Test(arguments: Attachment.allCases)
    func aServerThatStopsAnsweringTimesOutAndFailsEveryWaitingCommand(_ attachment: Attachment) throws {
        let (impostor, port) = try startImpostor(answer: nil)
        defer { impostor.send(SIGKILL); _ = try? impostor.wait(timeout: 5) }
        let start = monotonicSeconds()
        let log = try attachment.run { run in
            let client = try run.makeClient(port, 0.3)
            client.onClose { run.log.append("closed: \($0.map { "\($0)" } ?? "cleanly")"); run.stop() }
            for command in ["PING", "GET"] {
                client.send([command]) { result in
                    if case .failure(let error) = result { run.log.append("\(command): \(error.kind)") }
                }
            }
        }
        let seconds = monotonicSeconds() - start
        #expect(log == ["PING: timeout", "GET: timeout", "closed: redis://127.0.0.1:\(port) stopped answering: no reply within 300 ms"],
                "\(attachment)")
        #expect(seconds > 0.25 && seconds < 10, "gave up after \(seconds) s")
    }

    /// `Examples/Redis/scripts/hostile_redis.py MODE`: a server that answers
    /// the first command badly (see the script).
    func startHostileRedis(_ behaviour: String) throws -> (SpawnedProcess, UInt16) {
        let server = try SpawnedProcess("/usr/bin/env", ["python3", "-u", hostileRedisScript, behaviour])
        let port = UInt16(server.waitForOutput(containing: "\n").split(separator: "\n").first ?? "") ?? 0
        return (server, port)
    }

    /// Issue "Green every time", 2: hiredis 0.14 bounds nothing and its
    /// asynchronous context aborts on a reply nobody asked for. Every such
    /// server now ends the connection with a protocol violation that names
    /// what was wrong - a limit, or the reply nobody asked for - and the
    /// process goes on (its memory bounded by the limits: 1 MiB here).
    @Test(arguments: Attachment.allCases, ["bulk", "array", "unasked", "extra"])
    func aHostileServerEndsTheConnectionNeverTheProcess(_ attachment: Attachment, _ behaviour: String) throws {
        let (server, port) = try startHostileRedis(behaviour)
        defer { server.send(SIGKILL); _ = try? server.wait(timeout: 5) }
        let limits = RedisLimits(maxReplyBytes: 1 << 20, maxElements: 10_000)
        let log = try attachment.run(limits: limits) { run in
            let client = try run.makeClient(port, 20)
            client.onClose { run.log.append("closed: \($0.map { "\($0.kind): \($0.message)" } ?? "cleanly")"); run.stop() }
            // (With a command waiting, a reply before it would be taken as its
            // answer - by any client of Redis's protocol: "unasked" sends none.)
            guard behaviour != "unasked" else { return }
            client.send(["PING"]) { result in
                switch result {
                case .success(let reply): run.log.append("PING: \(reply)")
                case .failure(let error): run.log.append("PING: \(error.kind)")
                }
            }
        }
        let expected: String
        switch behaviour {
        case "bulk": expected = "closed: protocolViolation: a reply of more than 1048576 bytes (RedisLimits.maxReplyBytes)"
        case "array": expected = "closed: protocolViolation: a reply of more than 10000 values (RedisLimits.maxElements)"
        case "unasked": expected = "closed: protocolViolation: a reply nobody asked for: HELLO"
        default: expected = "closed: protocolViolation: a reply nobody asked for: PONG"
        }
        #expect(log.last == expected, "\(attachment) \(behaviour): \(log)")
        let first = ["extra": "PING: PONG", "unasked": expected][behaviour] ?? "PING: protocolViolation"
        #expect(log.first == first, "\(attachment) \(behaviour): \(log)")
    }

    @Test(arguments: Attachment.allCases)
    func aPasswordIsSentFirstAndARefusalNamesAuthentication(_ attachment: Attachment) throws {
        let redis = try RedisServer(password: "s3cret:@/%")
        func scenario(password: String?) throws -> [String] {
            try attachment.run(password: password) { run in
                let client = try run.makeClient(redis.port, nil)
                client.onClose { run.log.append("closed: \($0.map { "\($0.kind)" } ?? "cleanly")"); run.stop() }
                func describe(_ result: Result<RedisReply, RedisError>) -> String {
                    switch result {
                    case .success(let reply): "\(reply)"
                    case .failure(let error): "\(error.kind)"
                    }
                }
                client.send(["SET", "k", "v"]) { run.log.append("SET: \(describe($0))") }
                client.send(["GET", "k"]) { result in
                    run.log.append("GET: \(describe(result))")
                    client.close()
                }
            }
        }
        #expect(try scenario(password: "s3cret:@/%") == ["SET: OK", "GET: \"v\"", "closed: cleanly"], "\(attachment)")
        #expect(try scenario(password: nil) == ["SET: authentication", "GET: authentication", "closed: cleanly"], "\(attachment)")
        #expect(try scenario(password: "wrong") == ["SET: authentication", "GET: authentication", "closed: authentication"], "\(attachment)")
        let error = RedisError(.authentication, server: "redis://127.0.0.1:1", "WRONGPASS invalid username-password pair")
        #expect(error.description.contains("did not let us in") && !error.description.contains("s3cret"))
    }

    /// hiredis's own asynchronous context and its libev adapter
    /// (`adapters/libev.h`), given the raw loop behind an `EV.Loop`: a C
    /// library written for libev runs on the package's loop. (The package's
    /// client no longer uses that context - it aborts the process on a reply
    /// nobody asked for - but the loop still hosts it.)
    @Test func hiredisOwnLibevAdapterRunsOnTheLoop() throws {
        let redis = try RedisServer()
        let loop = try Loop()
        guard let context = redisAsyncConnect("127.0.0.1", Int32(redis.port)) else { Issue.record("no context"); return }
        #expect(loop.withUnsafeEVLoop { CHiredis_attach_libev(UnsafeMutableRawPointer($0), context) } == REDIS_OK)
        final class Replies { var texts: [String] = [] }
        let replies = Replies()
        let box = Unmanaged.passRetained(replies).toOpaque()
        var argument = "PING"
        let status = argument.withUTF8 { bytes in
            var argv: [UnsafePointer<CChar>?] = [UnsafeRawPointer(bytes.baseAddress!).assumingMemoryBound(to: CChar.self)]
            var lengths = [bytes.count]
            return redisAsyncCommandArgv(context, { context, reply, box in
            let replies = Unmanaged<Replies>.fromOpaque(box!).takeUnretainedValue()
            let text = reply.map { $0.assumingMemoryBound(to: redisReply.self).pointee }.map {
                String(decoding: UnsafeRawBufferPointer(start: $0.str, count: $0.len), as: UTF8.self)
            }
            replies.texts.append(text ?? "nil")
            redisAsyncDisconnect(context)
            }, box, 1, &argv, &lengths)
        }
        #expect(status == REDIS_OK)
        loop.run()
        Unmanaged<Replies>.fromOpaque(box).release()
        #expect(replies.texts == ["PONG"])
    }

    @Test(arguments: [true, false])
    func aDeadlineOrCancellationEndsTheWaitForAReply(_ libev: Bool) throws {
        let redis = try RedisServer()
        func scenario<L: EventLoop>(_ loop: L) throws -> [String] {
            let port = redis.port
            return try loop.run { executor in
                let client = LoopBound(try RedisClient(loop: executor.runningLoop, host: "127.0.0.1", port: port), loop: executor)
                var log: [String] = []
                // BLPOP on a list nobody fills: the reply comes after 1 s.
                do {
                    _ = try await withTimeout(.milliseconds(100)) { try await client.value.command(["BLPOP", "never", "1"]) }
                    log.append("replied")
                } catch let error as EventLoopError {
                    log.append("\(error.code)")
                }
                let waiter = Task(executorPreference: executor) { try await client.value.command(["BLPOP", "never", "1"]) }
                try await executor.sleep(for: .milliseconds(50))
                waiter.cancel()
                do {
                    _ = try await waiter.value
                    log.append("replied")
                } catch {
                    log.append(error is CancellationError ? "cancelled" : "\(error)")
                }
                // The client ends once the two replies still due have come
                // (closing waits for them): then nothing of it is left.
                let (closed, closedSink) = AsyncStream.makeStream(of: Void.self)
                client.value.onClose = { _ in closedSink.finish() }
                client.value.close()
                for await _ in closed {}
                return log
            }
        }
        let log = libev ? try scenario(try Loop()) : try scenario(try EpollLoop())
        #expect(log == ["timedOut", "cancelled"])
    }

    @Test(arguments: [true, false])
    func theAsyncEngineAwaitsReplies(_ libev: Bool) throws {
        let redis = try RedisServer()
        func scenario<L: EventLoop>(_ loop: L) throws -> [String] {
            let port = redis.port
            let replies = try loop.run { executor in
                let client = LoopBound(try RedisClient(loop: executor.runningLoop, host: "127.0.0.1", port: port), loop: executor)
                var replies: [String] = []
                replies.append("\(try await client.value.command(["SET", "k", "v"]))")
                replies.append("\(try await client.value.command(["GET", "k"]))")
                do {
                    _ = try await client.value.command(["INCR", "k"])
                } catch let error as RedisError {
                    replies.append("\(error.kind)")
                }
                client.value.close()
                do {
                    _ = try await client.value.command(["GET", "k"])
                } catch let error as RedisError {
                    replies.append("\(error.kind)")
                }
                return replies
            }
            loop.close()
            return replies
        }
        let replies = libev ? try scenario(try Loop()) : try scenario(try EpollLoop())
        #expect(replies == ["OK", "\"v\"", "server", "closed"])
    }
}

/// `Examples/Redis/scripts/hostile_redis.py`.
let hostileRedisScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Examples/Redis/scripts/hostile_redis.py").path
