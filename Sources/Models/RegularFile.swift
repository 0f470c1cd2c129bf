import Foundation

/// Reading a file a user named, refusing what is not a regular file before reading it: a FIFO
/// would block forever, `/dev/zero` never ends, and a directory reads as "permission denied".
public enum RegularFile {
    /// The bytes of `path`, or an error that says what the path is instead.
    public static func read(_ path: String, what: String = "file") throws -> Data {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let reason = errno == ENOENT ? "no such \(what)" : "cannot read this \(what): \(String(cString: strerror(errno)))"
            throw FileProblem(path: path, problem: reason)
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw FileProblem(path: path, problem: "is a directory, not a \(what)")
        case S_IFIFO: throw FileProblem(path: path, problem: "is a pipe (FIFO), not a \(what): save it to a file first")
        case S_IFCHR, S_IFBLK: throw FileProblem(path: path, problem: "is a device, not a \(what)")
        default: throw FileProblem(path: path, problem: "is not a regular file")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FileProblem(path: path, problem: "cannot read this \(what) (permissions?)")
        }
        return data
    }
}

/// A file that could not be read, with the path and why.
public struct FileProblem: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let problem: String
    public var description: String { "\(path): \(problem)" }
}
