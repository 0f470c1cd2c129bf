import Foundation
import Rendering
import SweepCore
import SweepFile

/// Raw writes to standard error. A closed or full stderr (mpirun already gone, a full disk under a
/// log file) loses the text, never the run: Foundation's FileHandle would trap there.
public enum StandardError {
    public static func write(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress! + offset, $0.count - offset) }
            if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return }
        }
    }
}

/// What the busy ranks are doing, for the person watching. On a terminal the last lines of
/// stderr show one line per busy rank (its task and latest epoch line), rewritten in place, while
/// finished-task lines scroll above them. Anywhere else (a log file, a Slurm job's output) each
/// progress line is printed once, as a plain line, so logs stay greppable.
public final class LiveStatus {
    private let live: Bool
    private let write: (String) -> Void
    private let width: Int
    private var lines: [Int: String] = [:]
    private var shown = 0
    private var lastDraw = Date.distantPast
    /// Redraws of the status lines are at most this often (finished-task lines always show at once).
    private let interval: TimeInterval = 0.25

    /// `write` takes text with its own newlines; `live` rewrites lines in place (a terminal of
    /// `width` columns).
    public init(live: Bool, width: Int = 100, write: @escaping (String) -> Void) {
        self.live = live
        self.width = max(20, width)
        self.write = write
    }

    /// Live on standard error when it is a terminal that understands cursor movement.
    public static func forStandardError(plain: @escaping (String) -> Void) -> LiveStatus {
        let term = ProcessInfo.processInfo.environment["TERM"] ?? ""
        guard isatty(2) != 0, !term.isEmpty, term != "dumb" else { return LiveStatus(live: false) { plain(String($0.dropLast())) } }
        var size = winsize()
        let columns = ioctl(2, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? Int(size.ws_col) : 100
        return LiveStatus(live: true, width: columns, write: StandardError.write)
    }

    /// A line that stays (a finished task, a warning): printed above the status lines. Lines
    /// and status texts quote names: their control characters are shown escaped.
    public func log(_ line: String) {
        let line = SafeText.terminal(line)
        guard live else { return write(line + "\n") }
        write(erase() + line + "\n" + drawing())
        lastDraw = Date()
    }

    /// What rank `rank` is doing now (nil: nothing). `plain` is the line a log gets instead.
    public func set(_ rank: Int, _ text: String?, plain: String? = nil) {
        let (text, plain) = (text.map(SafeText.terminal), plain.map(SafeText.terminal))
        guard live else {
            if let plain { write(plain + "\n") }
            return
        }
        lines[rank] = text
        guard Date().timeIntervalSince(lastDraw) >= interval || text == nil else { return }
        write(erase() + drawing())
        lastDraw = Date()
    }

    /// Removes the status lines (at the end of the run).
    public func finish() {
        guard live, shown > 0 else { return }
        write(erase())
    }

    /// Moves the cursor up over the status lines drawn last and clears to the end of the screen.
    private func erase() -> String {
        defer { shown = 0 }
        return shown > 0 ? "\u{1B}[\(shown)F\u{1B}[J" : ""
    }

    private func drawing() -> String {
        let ranks = lines.keys.sorted()
        shown = ranks.count
        return ranks.map { rank in
            let line = "  rank \(rank): \(lines[rank]!)"
            return (line.count > width - 1 ? String(line.prefix(width - 2)) + "…" : line) + "\n"
        }.joined()
    }
}
