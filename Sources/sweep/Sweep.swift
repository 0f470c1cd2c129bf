import ArgumentParser
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
          sweep train --model resnet20 --dataset fashion-mnist --epochs 15 --output r20.safetensors
          sweep eval r20.safetensors --dataset fashion-mnist
          sweep layers resnet20
          sweep bench --json
        """,
        subcommands: [RunCommand.self, PlanCommand.self, ReportCommand.self, TrainCommand.self, EvalCommand.self, LayersCommand.self, BenchCommand.self])
}

/// Options shared by every command that computes.
struct EngineOptions: ParsableArguments {
    @Option(help: "Threads for the engine's kernels (default: the cores this process may use).")
    var threads: Int?

    func apply() {
        Parallel.configure(threads: threads ?? Parallel.availableCores)
    }
}

/// Writes one line to standard error (progress and diagnostics; stdout carries results).
func report(_ line: String) {
    FileHandle.standardError.write((line + "\n").data(using: .utf8)!)
}

/// `1h02m`, `2m10s`, `4.1s` (the runner's own format).
func formatDuration(_ seconds: Double) -> String { ProgressText.duration(seconds) }
