import Foundation
import ArgumentParser
import Models

struct LayersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layers", abstract: "List a model's maskable units (the names sweep files use), with parameter counts.")

    @Argument(help: "Model name, e.g. resnet20, plain20, fcn-1024x3-bn, student-c2-w1 (with --checkpoint: optional, names its architecture).")
    var model: String?

    @Option(help: "Input shape as C,H,W.") var input = "1,28,28"
    @Option(help: "Number of classes.") var classes = 10
    @Option(help: "List the units of this safetensors checkpoint's network (ours, or a PyTorch state_dict).")
    var checkpoint: String?

    func validate() throws {
        guard model != nil || checkpoint != nil else { throw FlagError("give a model name (e.g. resnet20) or --checkpoint FILE") }
    }

    func run() throws {
        let parts = input.split(separator: ",", omittingEmptySubsequences: false)
        let shape = parts.compactMap { Int($0) }
        guard shape.count == 3, parts.count == 3 else { throw FlagError("--input is C,H,W (e.g. 1,28,28 or 3,32,32); got '\(input)'") }
        let network: Network
        if let checkpoint {
            let file = try SafeTensorsFile.read(URL(fileURLWithPath: checkpoint))
            network = file.metadata["layersweep.model"] != nil && model == nil
                ? try Checkpoint.network(from: file, path: checkpoint)
                : try TorchImport.network(from: file, path: checkpoint, inputShape: shape, model: model)
            emit("\(checkpoint): \(network.spec.name), \(network.spec.inputShape.map(String.init).joined(separator: "x")) inputs, \(network.spec.classes) classes")
        } else {
            network = Network.build(try ModelSpec(name: model!, inputShape: shape, classes: classes), seed: 0)
        }
        let width = network.units.map(\.name.count).max() ?? 0
        for unit in network.units {
            let pad = String(repeating: " ", count: width - unit.name.count)
            emit("\(unit.name)\(pad)  \(unit.kind.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0))  \(unit.parameterCount)\(unit.isTransition ? "  transition" : "")")
        }
        emit("total parameters: \(network.parameterCount)")
    }
}
