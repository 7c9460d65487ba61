import EventCore

/// Runs `tick` on a loop every `interval` until ``stop()``, which runs it
/// once more (the last report) and lets the loop run down - the reporters'
/// one timer (loop thread only: made and stopped there).
package final class LoopTicker {
    private var timer: (any Cancellable)?
    private let tick: () -> Void

    /// Ticks on `loop` every `interval`, the first time `interval` from now.
    package init<L: EventLoop>(on loop: L, every interval: Duration, _ tick: @escaping () -> Void) {
        self.tick = tick
        schedule(on: loop, every: interval)
    }

    private func schedule<L: EventLoop>(on loop: L, every interval: Duration) {
        timer = loop.schedule(after: interval) { [weak self, unowned loop] in
            guard let self, timer != nil else { return }
            tick()
            schedule(on: loop, every: interval)
        }
    }

    /// Ticks once more, then no more.
    package func stop() {
        guard let timer else { return }
        timer.cancel()
        self.timer = nil
        tick()
    }
}
