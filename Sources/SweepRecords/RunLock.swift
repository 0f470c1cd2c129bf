import Foundation
#if canImport(Glibc)
import Glibc
import SweepFile
#endif

/// An exclusive claim on a run directory, held from before its journal is read until the process
/// exits: two `sweep run` processes writing one journal would corrupt it.
///
/// The claim is a `flock` on `run.lock`, which the kernel drops when the holder dies (kill -9, a
/// preempted job), so a stale lock never blocks a resume. The file records who holds it, for the
/// message another process shows.
public final class RunLock {
    public static let fileName = "run.lock"
    private let descriptor: Int32

    /// Takes the lock of `directory` (which must exist) or throws naming its holder.
    public init(directory: URL) throws {
        let path = directory.appendingPathComponent(RunLock.fileName).path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw RunError(path: path, message: "cannot create the run's lock file: \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            if reason == EWOULDBLOCK {
                throw RunError(path: directory.path, message: "is in use by another sweep process\(holder.isEmpty ? "" : " (\(holder))"); wait for it to finish or stop it first")
            }
            throw RunError(path: path, message: "cannot lock: \(String(cString: strerror(reason)))")
        }
        descriptor = fd
        let host = ProcessInfo.processInfo.hostName
        let since = ISO8601DateFormatter().string(from: Date())
        let text = "pid \(getpid()) on \(host) since \(since)\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    deinit { close(descriptor) }
}
