import Foundation

/// Runs the built `sweep` binary the way a user does, directly or under `mpirun`.
enum SweepProcess {
    /// The `sweep` executable in the products directory that holds this test bundle.
    static var executable: String {
        let bundle = Bundle(for: Marker.self).bundleURL
        return (bundle.pathExtension == "xctest" ? bundle.deletingLastPathComponent() : bundle).appendingPathComponent("sweep").path
    }

    private final class Marker {}

    /// Root may run mpirun only when told so; more ranks than cores need oversubscription. The
    /// user's training store stays out of tests (a test that uses one names its own).
    static let mpiEnvironment = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                                 "OMPI_MCA_btl": "self,vader", "OMPI_MCA_rmaps_base_oversubscribe": "1", "LAYERSWEEP_CACHE": "off"]

    /// `sweep ARGS`, or `mpirun -n RANKS --oversubscribe sweep ARGS`, not yet started.
    static func process(_ arguments: [String], mpi ranks: Int? = nil) -> Process {
        let p = Process()
        if let ranks {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["mpirun", "-n", String(ranks), "--oversubscribe", executable] + arguments
        } else {
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = arguments
        }
        p.environment = ProcessInfo.processInfo.environment.merging(mpiEnvironment) { _, b in b }
        return p
    }

    /// Runs to completion; returns the exit status and both outputs.
    @discardableResult
    static func run(_ arguments: [String], mpi ranks: Int? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        try run(process(arguments, mpi: ranks))
    }

    /// Runs a prepared process to completion; returns the exit status and both outputs.
    static func run(_ p: Process) throws -> (status: Int32, stdout: String, stderr: String) {
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Read stderr on another thread so neither pipe can fill up and block the child.
        final class Box: @unchecked Sendable { var data = Data() }
        let errors = Box()
        let done = DispatchSemaphore(value: 0)
        Thread {
            errors.data = err.fileHandleForReading.readDataToEndOfFile()
            done.signal()
        }.start()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        done.wait()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: errors.data, as: UTF8.self))
    }

    /// A sweep file whose one training (ResNet-20 on 1,024 synthetic images, batches of 32) runs
    /// for seconds: long enough to be caught mid-epoch, then its zeroKernel masks.
    static func trainingSpec(_ name: String, epochs: Int, in dir: URL) throws -> String {
        let path = dir.appendingPathComponent("\(name).yaml").path
        try """
        name: \(name)
        datasets: [{name: synthetic, train_limit: 1024, test_limit: 256}]
        models: [resnet20]
        training: {epochs: \(epochs), batch_size: 32, learning_rate: 0.05}
        masks: [zeroKernel]
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The `sweep` processes `mpirun` (pid `launcher`) started, by MPI rank.
    static func ranks(of launcher: Int32) -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var found: [(rank: Int, pid: Int32)] = []
        for entry in entries {
            guard let pid = Int32(entry), let (state, parent) = status(pid), state != "Z", parent == launcher,
                  let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { continue }
            let vars = environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if let rank = vars.first(where: { $0.hasPrefix("OMPI_COMM_WORLD_RANK=") }).flatMap({ Int($0.split(separator: "=")[1]) }) {
                found.append((rank, pid))
            }
        }
        return found.sorted { $0.rank < $1.rank }.map(\.pid)
    }

    /// True while `pid` exists and is not a zombie (dead, waiting to be reaped).
    static func isAlive(_ pid: Int32) -> Bool { status(pid).map { $0.state != "Z" } ?? false }

    /// State letter and parent pid from /proc/PID/stat.
    private static func status(_ pid: Int32) -> (state: Character, parent: Int32)? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 2, let state = fields[0].first, let parent = Int32(fields[1]) else { return nil }
        return (state, parent)
    }
}
