import Foundation
#if canImport(Glibc)
import Glibc
import SweepFile
#endif

/// Checks and creates the places results are written to before any work starts, so a bad
/// `output:` or `-o` costs a one-line error, not a finished training.
public enum OutputPath {
    /// Creates `url` and its missing parents, or throws one line saying which component is in the way.
    public static func ensureDirectory(_ url: URL) throws {
        let path = url.path
        let components = path.split(separator: "/")
        var prefix = path.hasPrefix("/") ? "" : "."
        for (i, component) in components.enumerated() {
            prefix += "/" + component
            let shown = prefix.hasPrefix("./") ? String(prefix.dropFirst(2)) : prefix
            var info = stat()
            if lstat(prefix, &info) == 0 {
                if info.st_mode & S_IFMT == S_IFLNK, stat(prefix, &info) != 0 {
                    throw RunError(path: shown, message: "is a symbolic link to something that does not exist; remove it or choose another output directory")
                }
                guard info.st_mode & S_IFMT == S_IFDIR else {
                    throw RunError(path: shown, message: i == components.count - 1
                        ? "is a file, not a directory; choose another output directory"
                        : "is a file, so no directory can be made under it; choose another output directory")
                }
                continue
            }
            guard mkdir(prefix, 0o755) == 0 || errno == EEXIST else {
                throw RunError(path: shown, message: "cannot create directory: \(String(cString: strerror(errno)))")
            }
        }
        guard access(path, W_OK | X_OK) == 0 else {
            throw RunError(path: path, message: "is not writable: \(String(cString: strerror(errno))); choose another output directory")
        }
        // Permission bits do not tell about read-only mounts or full quotas; a probe file does.
        let probe = url.appendingPathComponent(".layersweep-probe-\(getpid())").path
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else {
            throw RunError(path: path, message: "cannot write here: \(String(cString: strerror(errno))); choose another output directory")
        }
        close(fd)
        unlink(probe)
    }

    /// Throws unless a file can be written at `path` (its directory exists and is writable, and
    /// the path is not a directory); checked before a command spends minutes computing it.
    public static func checkWritableFile(_ path: String) throws {
        let url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw RunError(path: path, message: "is a directory; give a file name (e.g. \(path)/model.safetensors)")
        }
        let parent = url.deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory) else {
            throw RunError(path: parent, message: "no such directory; create it first or choose another output path")
        }
        guard isDirectory.boolValue else { throw RunError(path: parent, message: "is a file, not a directory") }
        guard access(parent, W_OK | X_OK) == 0 else {
            throw RunError(path: parent, message: "is not writable: \(String(cString: strerror(errno)))")
        }
        if FileManager.default.fileExists(atPath: path), access(path, W_OK) != 0 {
            throw RunError(path: path, message: "exists and is not writable: \(String(cString: strerror(errno)))")
        }
    }
}
