import EventCore
import HTTP
import Redis
import TLS
#if canImport(Glibc)
import Glibc
import Resolver
#endif

/// The crawl's frontier and seen-set in Redis, shared by every process
/// started with the same ``FrontierAddress`` (scrapy-redis's design, with a
/// reliable queue). Each step is one Lua script, atomic in Redis:
///
/// - **open**: starts the crawl (the start URL seen and queued) or joins it,
///   and takes a lease for this process.
/// - **claim**: renews the lease and moves up to N jobs from the queue to
///   this process's in-flight list (`LMOVE`); when the queue is empty, first
///   gives the in-flight jobs of processes whose lease expired back to the
///   queue, and says how many jobs live processes still hold.
/// - **done**: the jobs that ended in one turn of the loop (fetched, failed,
///   redirected) leave the in-flight list; their links are scheduled -
///   `SADD` to the seen-set gates each, the page budget (`--max-pages`) is
///   counted in Redis - in the same script, so a crash between the two
///   cannot lose or double a URL.
/// - **leave**: the lease goes (and any job still held returns to the queue).
///
/// A process killed with its jobs leased loses nothing: once its lease
/// expires the others take them back. Used on the loop's thread.
final class RedisFrontier {
    let address: FrontierAddress
    private let send: ([String], @escaping (Result<RedisReply, RedisError>) -> Void) -> Void
    private let closeConnection: () -> Void
    private let after: (Duration, @escaping () -> Void) -> any Cancellable
    /// This process in the crawl: host, pid and a random tag.
    let id: String
    let lease: Duration
    let resume: Bool
    weak var crawl: Crawl?

    private var opened = false
    private var claiming = false
    private var pollDelay = Duration.milliseconds(5)
    private var poll: (any Cancellable)?
    private var heartbeat: (any Cancellable)?
    private var leaving = false
    /// The crawl is over for this process: finished everywhere, or the frontier failed.
    private(set) var isOver = false
    /// Pages fetched by every process of the crawl, as Redis last said.
    private(set) var crawlPages = 0
    /// Why the frontier failed (Redis unreachable, gone, or refused the crawl).
    private(set) var failure: String?
    /// Commands sent, for the figures (commands per page).
    private(set) var commands = 0

    private func key(_ name: String) -> String { "{\(address.prefix)}:\(name)" }

    /// Connects to Redis on `loop`, with the crawl's lease.
    init<L: EventLoop>(loop: L, address: FrontierAddress, lease: Duration, resume: Bool,
                       resolver: ResolverOptions = ResolverOptions(), tls: TLSContext? = nil) throws(RedisError) {
        let client = try RedisClient(loop: loop, host: address.host, port: address.port, user: address.user,
                                     password: address.password, connectTimeout: .seconds(5), resolverOptions: resolver, tls: tls)
        // A process that cannot renew its lease in time gives up: by then the
        // others may take its jobs back.
        client.replyTimeout = max(lease, .seconds(1))
        self.address = address
        send = client.send
        closeConnection = client.close
        after = { delay, work in loop.schedule(after: delay, work) }
        self.lease = lease
        self.resume = resume
        var name = [UInt8](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        id = "\(String(decoding: name.prefix { $0 != 0 }, as: UTF8.self)):\(getpid()):\(UInt32.random(in: 0...UInt32.max))"
        client.onClose = { [weak self] error in
            guard let self, let error else { return }
            fail(error)
        }
    }

    private var leaseMilliseconds: String { "\(Int((lease / .milliseconds(1)).rounded()))" }

    /// Each script's SHA1 once Redis has it (`SCRIPT LOAD` at open): then a
    /// step sends `EVALSHA` and the digest, not the script.
    private var digests: [String: String] = [:]

    private func run(_ script: Script, keys: [String], _ arguments: [String], _ reply: @escaping (RedisReply) -> Void) {
        commands += 1
        let digest = digests[script.source]
        let command = digest.map { ["EVALSHA", $0] } ?? ["EVAL", script.source]
        send(command + ["\(keys.count)"] + keys + arguments) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let value):
                reply(value)
            case .failure(let error) where error.kind == .server && error.message.hasPrefix("NOSCRIPT") && digest != nil:
                // The server's script cache was flushed: send the script itself.
                digests[script.source] = nil
                commands -= 1
                run(script, keys: keys, arguments, reply)
            case .failure(let error):
                fail(error)
            }
        }
    }

    /// Loads the scripts (pipelined ahead of the first step).
    private func loadScripts() {
        for script in Script.all {
            commands += 1
            send(["SCRIPT", "LOAD", script.source]) { [weak self] result in
                if case .success(let reply) = result, let digest = reply.text { self?.digests[script.source] = digest }
            }
        }
    }

    private func fail(_ error: RedisError) {
        fail("the frontier at \(address): \(error)")
    }

    private func fail(_ message: String) {
        guard failure == nil, !isOver else { return }
        failure = message
        isOver = true
        poll?.cancel()
        heartbeat?.cancel()
        closeConnection()
        // The jobs not started stay leased in Redis: a later --resume fetches them.
        crawl?.frontierFailed()
    }

    // MARK: the steps

    /// Opens (or joins) the crawl of `starts`, then claims the first jobs.
    /// The crawl is named by its starts: a process given other ones is refused.
    func open(starts: [CrawlJob]) {
        loadScripts()
        let name = starts.map(\.url.description).joined(separator: " ")
        run(.open, keys: [key("crawl"), key("leases"), key("seen"), key("queue")],
            [id, leaseMilliseconds, resume ? "1" : "0", name] + starts.flatMap { [$0.url.description, Self.encode($0)] }) { [self] reply in
            guard let fields = reply.elements, fields.count == 2, let verdict = fields[0].text else {
                return fail("the frontier at \(address) answered open with \(reply)")
            }
            guard verdict == "ok" else { return fail("the frontier at \(address): \(fields[1].text ?? "refused")") }
            crawlPages = fields[1].integer ?? 0
            opened = true
            beat()
            claim()
        }
    }

    private func beat() {
        heartbeat = after(lease / 3) { [weak self] in
            guard let self, !isOver else { return }
            run(.renew, keys: [key("leases")], [id, leaseMilliseconds]) { _ in }
            beat()
        }
    }

    /// Claims jobs when this process has room for them: up to twice the
    /// concurrency fetched or waiting, so the next batch is here before the
    /// connections are idle.
    func claim() {
        claimWanted = true
        scheduleFlush()
    }

    private func sendClaim() {
        guard opened, !claiming, !isOver, !leaving, let crawl else { return }
        let held = crawl.localJobs + crawl.report.inFlight
        let wanted = 2 * crawl.options.concurrency - held
        guard wanted > 0 && (held == 0 || wanted >= max(1, crawl.options.concurrency / 2)) else { return }
        claiming = true
        poll?.cancel()
        poll = nil
        run(.claim, keys: [key("queue"), key("leases"), key("crawl")], [id, leaseMilliseconds, "\(wanted)", address.prefix]) { [self] reply in
            claiming = false
            guard let crawl = self.crawl else { return }
            guard let fields = reply.elements, fields.count >= 2 else { return fail("the frontier at \(address) answered claim with \(reply)") }
            crawlPages = fields[0].integer ?? crawlPages
            let busy = fields[1].integer ?? 0
            var jobs: [CrawlJob] = []
            for entry in fields.dropFirst(2) {
                guard let text = entry.text else { continue }
                switch Self.decode(text) {
                case .success(let job) where crawl.isSameSite(job.url):
                    jobs.append(job)
                case .success(let job):
                    // Planted for another site: never requested from this one
                    // (it would go with a foreign Host); skipped by reason,
                    // and taken off this process's in-flight list.
                    crawl.foreignJob(job)
                    finished += [text, "0", "0"]
                    scheduleFlush()
                case .failure(let error):
                    // Not a job a crawler wrote: reported, and taken off this
                    // process's in-flight list (else the crawl never ends).
                    crawl.badEntry(text, error.reason)
                    finished += [text, "0", "0"]
                    scheduleFlush()
                }
            }
            if !jobs.isEmpty {
                pollDelay = .milliseconds(5)
                crawl.received(jobs)
                claim()
            } else if fields.count > 2 {
                // Only bad entries came (Redis did not count what is left): again.
                claim()
            } else if busy == 0 && crawl.localJobs == 0 && crawl.report.inFlight == 0 {
                leave()
            } else if crawl.localJobs == 0 {
                // Others (or our own fetches) may still find links: ask again soon.
                poll = after(pollDelay) { [weak self] in self?.claim() }
                pollDelay = min(pollDelay * 2, .milliseconds(200))
            }
        }
    }

    /// Reserves this process's next start time at `host` (an authority),
    /// `delay` seconds after the crawl's last there: `reply` gets the
    /// seconds to wait, or nil if Redis did not say.
    func reserveStart(_ host: String, delay: Double, _ reply: @escaping (Double?) -> Void) {
        guard opened, !isOver else { return reply(nil) }
        run(.slot, keys: [key("next-start:\(host)")], ["\(Int((delay * 1000).rounded(.up)))"]) { answer in
            reply(answer.integer.map { Double($0) / 1000 })
        }
    }

    /// What a fetch found: the links and redirects to schedule.
    enum Found {
        /// A link of a page: seen-set and page budget.
        case link(CrawlJob)
        /// A redirect's target: seen-set only (redirects are not pages).
        case redirect(CrawlJob)
        /// A redirect within its own chain: queued again, to end at the limit.
        case again(CrawlJob)
    }

    /// A job ended (a page, a redirect, a failure): it leaves the in-flight
    /// list and what it found is scheduled, in one script.
    func done(_ job: CrawlJob, page: Bool, found: [Found]) {
        guard opened, !isOver else { return }
        finished += [Self.encode(job), page ? "1" : "0", "\(found.count)"]
        for item in found {
            switch item {
            case .link(let next): finished += ["link", Self.encode(next)]
            case .redirect(let next): finished += ["redirect", Self.encode(next)]
            case .again(let next): finished += ["again", Self.encode(next)]
            }
        }
        claim()
    }

    /// The jobs that ended since the last flush, as the done script takes
    /// them: (job, page, count, then count x (kind, job)) each.
    private var finished: [String] = []
    private var flushScheduled = false
    private var claimWanted = false

    /// Sends what this turn of the loop gathered on the next: every job that
    /// ended in one script, then a claim if one is wanted - in that order, so
    /// the claim sees the links they found.
    private func scheduleFlush() {
        guard !flushScheduled, !isOver else { return }
        flushScheduled = true
        _ = after(.zero) { [weak self] in self?.flush() }
    }

    private func flush() {
        flushScheduled = false
        guard opened, !isOver, let crawl else { return }
        if !finished.isEmpty {
            let arguments = [address.prefix, id, "\(crawl.options.maxPages)"] + finished
            finished = []
            run(.done, keys: [key("crawl"), key("seen"), key("queue")], arguments) { [weak self] reply in
                self?.crawlPages = reply.integer ?? self?.crawlPages ?? 0
            }
        }
        if claimWanted {
            claimWanted = false
            sendClaim()
        }
    }

    private func leave() {
        guard !leaving else { return }
        leaving = true
        heartbeat?.cancel()
        run(.leave, keys: [key("leases"), key("queue")], [address.prefix, id]) { [self] _ in
            isOver = true
            closeConnection()
            crawl?.frontierFinished()
        }
    }
}
