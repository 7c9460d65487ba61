import CLibev
@_spi(EventLoops) import EventCore

extension Loop {
    /// The loop's monitor (``/EventCore/LoopMonitor``): off until started,
    /// then its iterations, time blocked in the kernel and running (libev's
    /// `ev_set_loop_release_cb` around its wait), its delay (a probe timer
    /// that does not keep the loop running) and every callback, task step
    /// or once timer that held it over the threshold, named.
    ///
    /// Made on first use; use it on the loop's thread.
    public var monitor: LoopMonitor {
        let raw = core.checkedLoop("monitor")
        if let monitor = core.executor.monitor { return monitor }
        let monitor = LoopMonitor(core.lifecycle) { [weak self] interval, tick in
            guard let self, !core.lifecycle.isClosingOrClosed,
                  let probe = try? timer(after: interval, repeat: interval, { _ in tick() }) else { return nil }
            probe.keepAlive = false // the probe alone does not keep run() going
            return probe
        }
        core.executor.monitor = monitor
        core.lifecycle.monitor = monitor
        Trampoline.installMonitorHooks(raw)
        return monitor
    }
}

extension Loop: LoopGauges {}
