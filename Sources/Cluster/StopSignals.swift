import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How a run is asked to stop from outside.
public enum StopRequest: Equatable, Sendable {
    /// SIGINT or SIGTERM (Ctrl-C, `mpirun` being stopped, Slurm cancelling or requeueing the job):
    /// stop dispatching and exit at once; running tasks are abandoned and run again on resume.
    case interrupt(signal: Int32)
    /// SIGUSR1 (Slurm's warning before a time limit or preemption, `--signal=B:USR1@120`): stop
    /// dispatching, let running tasks finish within the grace time, then exit resumable.
    case drain

    /// The conventional exit status: 128 + signal for an interrupt, 75 (EX_TEMPFAIL: try again
    /// later) for a drain.
    public var exitStatus: Int32 {
        switch self {
        case let .interrupt(signal): return 128 + signal
        case .drain: return 75
        }
    }

    public var name: String {
        switch self {
        case let .interrupt(signal): return signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "signal \(signal)"
        case .drain: return "SIGUSR1"
        }
    }
}

/// Signal handling of `sweep run`. The coordinator's process records the first signal and its
/// dispatch loop acts on it between messages (never inside a journal write); a second SIGINT or
/// SIGTERM ends it at once. Worker processes hold no state worth saving: they exit on SIGINT or
/// SIGTERM immediately and ignore SIGUSR1, which `mpirun` forwards to every rank.
public enum StopSignals {
    nonisolated(unsafe) private static var received: Int32 = 0

    /// The request received so far, if any.
    public static var request: StopRequest? {
        let signal = received
        switch signal {
        case 0: return nil
        case SIGUSR1: return .drain
        default: return .interrupt(signal: signal)
        }
    }

    /// Installs the coordinator's handlers (the process that owns the journal).
    public static func installForCoordinator() {
        ignoreBrokenPipes()
        for signal in [SIGINT, SIGTERM, SIGUSR1] {
            install(signal) { signal in
                let previous = StopSignals.received
                if previous != 0 && previous != SIGUSR1 && signal != SIGUSR1 { _exit(128 + signal) }
                if previous == 0 || previous == SIGUSR1 { StopSignals.received = signal }
            }
        }
    }

    /// Installs a worker rank's handlers: leave at once on SIGINT/SIGTERM, ignore SIGUSR1.
    public static func installForWorker() {
        ignoreBrokenPipes()
        for signal in [SIGINT, SIGTERM] { install(signal) { signal in _exit(128 + signal) } }
        Glibc.signal(SIGUSR1, SIG_IGN)
    }

    /// A write to a closed pipe (the launcher's output after it died) fails instead of killing.
    private static func ignoreBrokenPipes() { Glibc.signal(SIGPIPE, SIG_IGN) }

    /// Ends this process when its parent (mpirun, orted, slurmstepd) goes away: a launcher that
    /// was killed outright (SIGKILL, a crashed node daemon) must not leave ranks computing.
    public static func exitWithParent() {
        let parent = getppid()
        let watcher = Thread {
            while true {
                if getppid() != parent { _exit(StopRequest.interrupt(signal: SIGHUP).exitStatus) }
                usleep(100_000)
            }
        }
        watcher.stackSize = 1 << 16
        watcher.start()
    }

    /// Forgets a received signal (tests run several sweeps in one process).
    public static func reset() { received = 0 }

    private static func install(_ signal: Int32, _ handler: @convention(c) (Int32) -> Void) {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = handler
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_RESTART
        sigaction(signal, &action, nil)
    }
}
