import ArgumentParser
import Cluster
import Foundation
import SweepCore
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
          sweep bench --json
        """,
        version: "layersweep \(layersweepVersion)",
        subcommands: [RunCommand.self, PlanCommand.self, ReportCommand.self, StatusCommand.self, CompareCommand.self, TrainCommand.self, EvalCommand.self, LayersCommand.self, BenchCommand.self])

    /// Switches OpenBLAS to the CPU's own kernels first (see `BLASKernels`), then runs the command.
    static func main() {
        BLASKernels.relaunchForNativeKernels()
        main(nil)
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
func report(_ line: String) { StandardError.write(line + "\n") }

/// `1h02m`, `2m10s`, `4.1s` (the runner's own format).
func formatDuration(_ seconds: Double) -> String { ProgressText.duration(seconds) }
