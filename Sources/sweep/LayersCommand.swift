import Foundation
import ArgumentParser
import Models
import ONNX

struct LayersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layers", abstract: "List a model's maskable units (the names sweep files use), with parameter counts.",
        discussion: """
        A model name lists a built-in architecture's units; an ONNX file (net.onnx) lists the units \
        of the graph it holds, named by the PyTorch module paths the file carries, with each \
        unit's operator and output shape.
        """)

    @Argument(help: "Model name (resnet20, plain20, fcn-1024x3-bn, student-c2-w1, ...) or an ONNX file (with --checkpoint: optional, names its architecture).")
    var model: String?

    @Option(help: "Input shape as C,H,W (an ONNX graph's own shape when it declares one).") var input = "1,28,28"
    @Option(help: "Number of classes.") var classes = 10
    @Option(help: "List the units of this safetensors checkpoint's network (ours, or a PyTorch state_dict).")
    var checkpoint: String?
    @Flag(help: "Print the units as JSON (name, kind, op, parameters, output shape).") var json = false

    func validate() throws {
        guard model != nil || checkpoint != nil else { throw FlagError("give a model name (e.g. resnet20), an ONNX file, or --checkpoint FILE") }
    }

    /// One line of the listing, or one object of the JSON.
    struct Row: Encodable {
        let name: String
        let kind: String
        let op: String?
        let parameters: Int
        let outputShape: [Int]?
        let transition: Bool?

        enum CodingKeys: String, CodingKey { case name, kind, op, parameters, transition, outputShape = "output_shape" }
    }

    func run() throws {
        let parts = input.split(separator: ",", omittingEmptySubsequences: false)
        let shape = parts.compactMap { Int($0) }
        guard shape.count == 3, parts.count == 3 else { throw FlagError("--input is C,H,W (e.g. 1,28,28 or 3,32,32); got '\(input)'") }
        if let model, model.lowercased().hasSuffix(".onnx"), checkpoint == nil { return try graph(model, input: shape) }
        let network: Network
        var title: String?
        if let checkpoint {
            let file = try SafeTensorsFile.read(URL(fileURLWithPath: checkpoint))
            network = file.metadata["layersweep.model"] != nil && model == nil
                ? try Checkpoint.network(from: file, path: checkpoint)
                : try TorchImport.network(from: file, path: checkpoint, inputShape: shape, model: model)
            title = "\(checkpoint): \(network.spec.name), \(network.spec.inputShape.map(String.init).joined(separator: "x")) inputs, \(network.spec.classes) classes"
        } else {
            network = Network.build(try ModelSpec(name: model!, inputShape: shape, classes: classes), seed: 0)
        }
        let rows = network.units.map { Row(name: $0.name, kind: $0.kind.rawValue, op: nil, parameters: $0.parameterCount, outputShape: nil, transition: $0.isTransition) }
        try show(rows, title: title, total: network.parameterCount)
    }

    /// The units of an ONNX graph, with output shapes from one run on a zero image.
    private func graph(_ path: String, input: [Int]) throws {
        let program = try ONNXProgram(contentsOf: URL(fileURLWithPath: path))
        guard program.inputNames.count == 1 else { throw FlagError("\(path): the graph has \(program.inputNames.count) inputs; layersweep reads image classifiers") }
        var shape = [1] + input
        if let declared = program.inputShape, declared.count == 4, declared.dropFirst().allSatisfy({ $0 != nil }) {
            shape = [1] + declared.dropFirst().map { $0! }
        }
        let shapes = try program.shapes([program.inputNames[0]: .floats(shape, [Float](repeating: 0, count: shape.reduce(1, *)))])
        let nodes = program.model.graph.nodes
        let rows = program.units.map { unit in
            Row(name: unit.name, kind: unit.kind.rawValue, op: unit.op, parameters: unit.parameters,
                outputShape: unit.nodes.first.flatMap { shapes[nodes[$0].outputs.first ?? ""] }.map { Array($0.dropFirst()) }, transition: nil)
        }
        let parameters = program.constants.values.reduce(0) { total, v in if case .floats = v { return total + v.count } else { return total } }
        try show(rows, title: "\(path): \(shape.dropFirst().map(String.init).joined(separator: "x")) inputs, \(program.units.count) units", total: parameters)
    }

    private func show(_ rows: [Row], title: String?, total: Int) throws {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(rows), as: UTF8.self))
            return
        }
        if let title { emit(title) }
        let width = rows.map(\.name.count).max() ?? 0
        let opWidth = rows.compactMap(\.op?.count).max() ?? 0
        for r in rows {
            let pad = String(repeating: " ", count: width - r.name.count)
            let op = r.op.map { "  " + $0.padding(toLength: opWidth, withPad: " ", startingAt: 0) } ?? ""
            let shape = r.outputShape.map { "  " + $0.map(String.init).joined(separator: "x") } ?? ""
            emit("\(r.name)\(pad)  \(r.kind.padding(toLength: 6, withPad: " ", startingAt: 0))\(op)  \(r.parameters)\(shape)\(r.transition == true ? "  transition" : "")")
        }
        emit("total parameters: \(total)")
    }
}
