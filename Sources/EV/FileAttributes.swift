import CLibev
import EventCore
import Glibc

/// The attributes of a path as `stat(2)` reports them.
public struct FileAttributes: Equatable, Sendable {
    /// Size in bytes.
    public var size: Int64
    /// Type and permission bits (`st_mode`).
    public var mode: UInt32
    /// Inode number.
    public var inode: UInt64
    /// Device number.
    public var device: UInt64
    /// Number of hard links.
    public var linkCount: UInt64
    /// The owner's user id (`st_uid`).
    public var userID: UInt32
    /// The owner's group id (`st_gid`).
    public var groupID: UInt32
    /// Last access, in seconds since the epoch (`st_atim`).
    public var accessTime: WallClock.Instant
    /// Last modification, in seconds since the epoch.
    public var modificationTime: WallClock.Instant
    /// Last status change, in seconds since the epoch.
    public var statusChangeTime: WallClock.Instant

    /// Converts libev's `stat` data; nil when its link count is 0, libev's sign for "missing".
    init?(_ status: stat) {
        guard status.st_nlink != 0 else { return nil }
        size = Int64(status.st_size)
        mode = status.st_mode
        inode = UInt64(status.st_ino)
        device = UInt64(status.st_dev)
        linkCount = UInt64(status.st_nlink)
        userID = status.st_uid
        groupID = status.st_gid
        accessTime = WallClock.Instant(sinceEpoch: .seconds(status.st_atim.tv_sec) + .nanoseconds(status.st_atim.tv_nsec))
        modificationTime = WallClock.Instant(sinceEpoch: .seconds(status.st_mtim.tv_sec) + .nanoseconds(status.st_mtim.tv_nsec))
        statusChangeTime = WallClock.Instant(sinceEpoch: .seconds(status.st_ctim.tv_sec) + .nanoseconds(status.st_ctim.tv_nsec))
    }
}
