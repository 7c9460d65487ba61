import CLinux
import EventCore
import Glibc

/// A signal watch of an ``EpollLoop``.
public final class SignalWatch: Cancellable {
    /// The signal watched.
    public let signal: Int32
    let callback: (Int32) -> Void
    unowned(unsafe) var loop: EpollLoop?

    init(signal: Int32, loop: EpollLoop, callback: @escaping (Int32) -> Void) {
        self.signal = signal
        self.loop = loop
        self.callback = callback
    }

    /// Stops watching the signal. Harmless when done already.
    public func cancel() {
        loop?.cancel(self)
        loop = nil
    }
}
