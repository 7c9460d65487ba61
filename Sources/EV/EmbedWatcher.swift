import CLibev
import EventCore

/// Embeds another loop into this one (`ev_embed`): when the embedded loop has
/// events, this loop notices and the embedded loop's watchers run, so one
/// thread drives both.
///
/// The classic use: a loop on a backend that cannot handle every kind of
/// descriptor (the default `select`/`poll` loop for ttys, say) embedding an
/// epoll loop for the many sockets. The embedded loop must use an embeddable
/// backend (``Backend/embeddable``; epoll on Linux) and be driven only through
/// this watcher while embedded.
///
/// Without a callback, libev sweeps the embedded loop automatically; with
/// one, the callback decides when, by calling ``sweep()``.
///
/// The corresponding C type is `ev_embed`.
public final class EmbedWatcher: Watcher {
    /// The closure called with the watcher when the embedded loop has events.
    public typealias Callback = (EmbedWatcher) -> Void

    private let embed: UnsafeMutablePointer<ev_embed>
    private let callback: Callback?
    /// The loop embedded; kept alive as long as this watcher.
    public private(set) var embedded: Loop

    /// Creates a stopped watcher that embeds `other` into `loop`.
    ///
    /// - Parameters:
    ///   - loop: the outer loop.
    ///   - other: the loop to embed; its backend must be embeddable.
    ///   - callback: called when `other` needs a sweep; nil lets libev sweep automatically.
    /// - Throws: ``/EventCore/EventLoopError``: ``/EventCore/EventLoopError/Code/notEmbeddable``
    ///   if `other`'s backend is not embeddable or `other` is `loop`;
    ///   ``/EventCore/EventLoopError/BadDescriptor/epollCycle`` if `other` already watches or
    ///   embeds `loop` (directly or through others).
    ///
    /// The corresponding C macro is `ev_embed_init`.
    public init(loop: Loop, embedding other: Loop, _ callback: Callback? = nil) throws(EventLoopError) {
        try Self.check(other, into: loop)
        embed = loop.core.memory.allocate()
        embedded = other
        self.callback = callback
        CLibev_embed_init(embed, Trampoline.callback, other.core.checkedLoop())
        super.init(core: loop.core, cStruct: embed)
    }

    /// Embeds another loop instead, restarting the watcher if it was active.
    ///
    /// - Throws: as ``init(loop:embedding:_:)``; the watcher is unchanged then.
    ///
    /// The corresponding C macro is `ev_embed_set`.
    public func set(embedding other: Loop) throws(EventLoopError) {
        guard let loop = self.loop else { throw .loopClosed }
        try Self.check(other, into: loop)
        restart { CLibev_embed_set(embed, other.core.checkedLoop()) }
        embedded = other
    }

    /// Refuses what libev would abort on: a loop embedding itself, a
    /// backend that cannot be embedded, and a cycle of epoll instances.
    private static func check(_ other: Loop, into loop: Loop) throws(EventLoopError) {
        guard other !== loop else { throw EventLoopError(.notEmbeddable, operation: "embed", detail: "a loop cannot embed itself") }
        guard Backend.embeddable.contains(other.backend) else {
            throw EventLoopError(.notEmbeddable, operation: "embed",
                                 detail: "a loop using \(other.backend) cannot be embedded; embeddable backends here: \(Backend.embeddable)")
        }
        // Embedding watches `other`'s epoll instance from this loop's: refuse a cycle.
        if let fd = other.core.backendDescriptor {
            try loop.core.checkWatchable(fd)
        }
    }

    /// Starts embedding.
    ///
    /// The corresponding C function is `ev_embed_start`.
    public func start() { startChecked() }

    /// Runs the embedded loop once without blocking, handling its events.
    ///
    /// The corresponding C function is `ev_embed_sweep`.
    public func sweep() {
        ev_embed_sweep(core.checkedLoop(), embed)
    }

    override func cStart(_ loop: OpaquePointer) { ev_embed_start(loop, embed) }
    override func cStop(_ loop: OpaquePointer) { ev_embed_stop(loop, embed) }
    override func fire(_ events: Events) {
        // Without a callback, do what libev does for a NULL one: sweep at once.
        if let callback { callback(self) } else { sweep() }
    }
}

extension Loop {
    /// Embeds `other` into this loop; see ``EmbedWatcher``.
    ///
    /// ```swift
    /// let sockets = try Loop(backends: .epoll)
    /// let main = try Loop(backends: .poll)
    /// try main.embed(sockets)      // main.run() now also runs the sockets' watchers
    /// ```
    ///
    /// - Returns: the started watcher; it stays alive until stopped, so the result can be ignored.
    /// - Throws: ``/EventCore/EventLoopError/Code/notEmbeddable``, or an epoll cycle.
    ///
    /// The corresponding C functions are `ev_embed_init` and `ev_embed_start`.
    @discardableResult
    public func embed(_ other: Loop, _ callback: EmbedWatcher.Callback? = nil) throws(EventLoopError) -> EmbedWatcher {
        let watcher = try EmbedWatcher(loop: self, embedding: other, callback)
        watcher.start()
        return watcher
    }
}
