// `import EV` brings the loops' common vocabulary too: EventLoopError,
// `FileDescriptor`, WallClock, the async sockets.
@_exported import EventCore
