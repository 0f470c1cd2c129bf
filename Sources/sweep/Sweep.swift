import ArgumentParser
import Cluster
import Foundation
import Rendering
import Studies
import SweepCore
import SweepRecords
import SweepFile
import TensorEngine

/// The `sweep` command: train, evaluate and ablate small networks, layer by layer.
@main
struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Which layers of a trained network matter? Train, mask and evaluate, layer by layer.",
        discussion: """
        Examples:
          sweep plan sweeps/quick.yaml --ranks 32
          sweep run sweeps/quick.yaml -j 2                  (or: mpirun -n 32 sweep run sweeps/wang2020.yaml)
          sweep report runs/quick
          sweep compare runs/a runs/b
          sweep train --model resnet20 --dataset fashion-mnist --epochs 15 --output r20.safetensors
          sweep eval r20.safetensors --dataset fashion-mnist
          sweep layers resnet20
          sweep cache list
          sweep bench --json
        """,
        version: "layersweep \(layersweepVersion)",
        subcommands: [RunCommand.self, PlanCommand.self, ReportCommand.self, StatusCommand.self, CompareCommand.self, TrainCommand.self, EvalCommand.self, LayersCommand.self, DatasetsCommand.self, CacheCommand.self, BenchCommand.self])

    /// Switches OpenBLAS to the CPU's own kernels first (see `BLASKernels`) and installs the
    /// studies, then runs the command.
    /// Errors print with their control characters escaped: a message may quote a name or a
    /// file's contents.
    static func main() {
        BLASKernels.relaunchForNativeKernels()
        StudyCatalog.install()
        var command: ParsableCommand
        do { command = try parseAsRoot() } catch { exitSafely(withError: error, lines: true) }
        // Help and version come back as "errors" that exit 0, from here too (`sweep help run`).
        do { try command.run() } catch { exitSafely(withError: error, lines: exitCode(for: error) == .success) }
        Foundation.exit(0)
    }

    /// ArgumentParser's `exit(withError:)`, with the message made safe for a terminal: `lines`
    /// keeps the line breaks of usage and help texts; a command's own errors are one line.
    static func exitSafely(withError error: Error, lines: Bool) -> Never {
        let code = exitCode(for: error)
        let full = fullMessage(for: error)
        let message = lines ? SafeText.terminalLines(full) : SafeText.terminal(full)
        if code == .success {
            if !message.isEmpty { print(message) }
        } else if !message.isEmpty {
            StandardError.write(message + "\n")
        }
        Foundation.exit(code.rawValue)
    }
}

/// Options shared by every command that computes.
struct EngineOptions: ParsableArguments {
    @Option(help: "Threads for the engine's kernels (default: the cores this process may use).")
    var threads: Int?

    func validate() throws { try EngineOptions.check(threads: threads) }

    /// `--threads` within 1...Parallel.maxThreads (a typo of 100000 would start that many threads).
    static func check(threads: Int?) throws {
        guard let threads else { return }
        guard (1...Parallel.maxThreads).contains(threads) else {
            throw FlagError("--threads must be between 1 and \(Parallel.maxThreads) (this machine has \(Parallel.availableCores) cores)")
        }
    }

    func apply() {
        Parallel.configure(threads: threads ?? Parallel.availableCores)
    }
}

/// A flag's value out of range: one line naming the flag (ArgumentParser's ValidationError
/// would add the whole usage text).
struct FlagError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Writes one line to standard error (progress and diagnostics; stdout carries results).
/// Control characters (from names, files) are shown escaped, as everywhere on the terminal.
func report(_ line: String) { StandardError.write(SafeText.terminal(line) + "\n") }

/// Writes one line to standard output (results), control characters escaped.
func emit(_ line: String) { print(SafeText.terminal(line)) }

/// `1h02m`, `2m10s`, `4.1s` (the runner's own format).
func formatDuration(_ seconds: Double) -> String { ProgressText.duration(seconds) }
