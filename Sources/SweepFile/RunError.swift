/// A problem with a run's files (run directory, journal, status, results), naming the path:
/// the one-line error the commands print.
public struct RunError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}
