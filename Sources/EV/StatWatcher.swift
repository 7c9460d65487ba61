import CLibev
import EventCore
import Glibc

/// Calls back when a path's attributes change: created, written, renamed
/// over, removed (`ev_stat`).
///
/// libev polls the path with `stat` every ``interval`` seconds and, where it
/// can, also uses inotify to notice changes at once. The callback can compare
/// ``previous`` and ``current``; either is nil when the path did not exist
/// (libev reports a missing path as a link count of 0).
///
/// ## The special problem of stat time resolution
/// Two changes within the file system's timestamp resolution, or within one
/// polling interval, can look like one; wait a little between changes you
/// need to tell apart.
///
/// The corresponding C type is `ev_stat`.
public final class StatWatcher: Watcher {
    /// The closure called with the watcher when the attributes change.
    public typealias Callback = (StatWatcher) -> Void

    private let cStat: UnsafeMutablePointer<ev_stat>
    private let callback: Callback
    /// libev keeps a pointer to the path; this is its storage.
    private var cPath: UnsafeMutablePointer<CChar>

    /// Creates a stopped watcher for `path`.
    ///
    /// - Parameters:
    ///   - loop: the loop that will run it.
    ///   - path: the file or directory to watch; it need not exist.
    ///   - interval: between polls; zero (the default, and for a negative one)
    ///     lets libev choose (about 5 s, immediate with inotify).
    ///   - callback: called with the watcher at each change.
    ///
    /// The corresponding C macro is `ev_stat_init`.
    public init(loop: Loop, path: String, interval: Duration = .zero, _ callback: @escaping Callback) {
        cStat = loop.core.memory.allocate()
        cPath = strdup(path)
        self.callback = callback
        CLibev_stat_init(cStat, Trampoline.callback, cPath, interval.libevInterval)
        super.init(core: loop.core, cStruct: cStat)
    }

    deinit { free(cPath) }

    /// The path watched.
    public var path: String { String(cString: cPath) }
    /// The polling interval libev uses.
    public var interval: Duration { LoopTime.duration(cStat.pointee.interval) }

    /// The attributes at the latest check; nil if the path did not exist.
    public var current: FileAttributes? { FileAttributes(cStat.pointee.attr) }
    /// The attributes before the latest change; nil if the path did not exist.
    public var previous: FileAttributes? { FileAttributes(cStat.pointee.prev) }

    /// Starts watching; reads the attributes once, so ``current`` is valid right away.
    ///
    /// The corresponding C function is `ev_stat_start`.
    public func start() { startChecked() }

    /// Changes the path and interval, restarting the watcher if it was active.
    ///
    /// The corresponding C macro is `ev_stat_set`.
    public func set(path: String, interval: Duration = .zero) {
        let wasActive = isActive
        stop()
        free(cPath)
        cPath = strdup(path)
        CLibev_stat_set(cStat, cPath, interval.libevInterval)
        if wasActive { start() }
    }

    /// Reads the attributes now into ``current``, without calling back.
    ///
    /// The corresponding C function is `ev_stat_stat`.
    public func refresh() {
        ev_stat_stat(core.checkedLoop(), cStat)
    }

    override func cStart(_ loop: OpaquePointer) { ev_stat_start(loop, cStat) }
    override func cStop(_ loop: OpaquePointer) { ev_stat_stop(loop, cStat) }
    override func fire(_ events: Events) { callback(self) }
}

extension Loop {
    /// Calls `callback` whenever the attributes of `path` change.
    ///
    /// ```swift
    /// try loop.stat("/etc/hosts") { watcher in
    ///     if watcher.current == nil { print("removed") }
    /// }
    /// ```
    ///
    /// - Returns: the started watcher; it stays alive until stopped, so the result can be ignored.
    ///
    /// The corresponding C functions are `ev_stat_init` and `ev_stat_start`.
    @discardableResult
    public func stat(_ path: String, interval: Duration = .zero, _ callback: @escaping StatWatcher.Callback) -> StatWatcher {
        let watcher = StatWatcher(loop: self, path: path, interval: interval, callback)
        watcher.start()
        return watcher
    }
}
