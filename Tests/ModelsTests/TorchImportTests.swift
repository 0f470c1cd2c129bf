import Foundation
@testable import Models
import TensorEngine
import XCTest

/// PyTorch state_dicts (as safetensors) become our networks: names mapped, architecture inferred,
/// and every misfit reported on one line.
final class TorchImportTests: XCTestCase {
    /// Our network's tensors under the names a CIFAR ResNet in PyTorch gives them.
    func torchResNet(_ model: String, input: [Int] = [1, 12, 12]) throws -> (Network, [(String, Tensor)]) {
        let network = Network.build(try ModelSpec(name: model, inputShape: input, classes: 10), seed: 5)
        let renamed = network.stateTensors.map { (name, tensor) -> (String, Tensor) in
            var n = name.replacingOccurrences(of: "stem.conv", with: "conv1").replacingOccurrences(of: "stem.bn", with: "bn1")
                .replacingOccurrences(of: "shortcut.conv", with: "shortcut.0").replacingOccurrences(of: "shortcut.bn", with: "shortcut.1")
                .replacingOccurrences(of: "fc.", with: "linear.")
            if n.hasPrefix("stage") {
                var parts = n.split(separator: ".").map(String.init)
                parts[0] = "layer" + parts[0].dropFirst(5)
                parts[1] = String(Int(parts[1].dropFirst(5))! - 1)
                n = parts.joined(separator: ".")
            }
            return (n, tensor)
        }
        return (network, renamed + [("bn1.num_batches_tracked", Tensor(shape: [1]))])
    }

    func importing(_ tensors: [(String, Tensor)], model: String? = nil, input: [Int] = [1, 12, 12]) throws -> Network {
        try TorchImport.network(from: SafeTensorsFile(tensors: tensors, metadata: [:]), path: "net.safetensors", inputShape: input, model: model)
    }

    func testResNetNamesMapAndTheArchitectureIsInferred() throws {
        for (model, expected) in [("resnet8", "resnet8"), ("resnet20", "resnet20"), ("resnet14-b", "resnet14-b")] {
            let (original, tensors) = try torchResNet(model)
            let imported = try importing(tensors)
            XCTAssertEqual(imported.spec.name, expected)
            XCTAssertEqual(try Checkpoint.file(of: imported).encoded(), try Checkpoint.file(of: original).encoded(), model)
        }
        // downsample.0/1 is torchvision's spelling of the option-B shortcut; plain nets are named.
        let (_, b) = try torchResNet("resnet8-b")
        let downsample = b.map { ($0.0.replacingOccurrences(of: "shortcut.", with: "downsample."), $0.1) }
        XCTAssertEqual(try importing(downsample).spec.name, "resnet8-b")
        let (_, a) = try torchResNet("resnet8")
        XCTAssertEqual(try importing(a, model: "plain8").spec.name, "plain8")
    }

    /// A state_dict saved from DistributedDataParallel (`module.`) or torch.compile
    /// (`_orig_mod.`), or both, loads like the bare model's (it was "unknown layout").
    func testWrapperPrefixesAreRemoved() throws {
        let (original, tensors) = try torchResNet("resnet8")
        for prefix in ["module.", "_orig_mod.", "module._orig_mod.", "_orig_mod.module."] {
            let imported = try importing(tensors.map { (prefix + $0.0, $0.1) })
            XCTAssertEqual(try Checkpoint.file(of: imported).encoded(), try Checkpoint.file(of: original).encoded(), prefix)
        }
    }

    func testSequentialFullyConnectedNetsMap() throws {
        let network = Network.build(try ModelSpec(name: "fcn-32x2-bn", inputShape: [1, 12, 12], classes: 10), seed: 2)
        // nn.Sequential(Linear, BatchNorm1d, ReLU, Linear, BatchNorm1d, ReLU, Linear) under "layers."
        let index = ["fc1": 0, "bn1": 1, "fc2": 3, "bn2": 4, "readout": 6]
        let tensors = network.stateTensors.map { (name, t) -> (String, Tensor) in
            let parts = name.split(separator: ".")
            return ("layers.\(index[String(parts[0])]!).\(parts[1])", t)
        }
        let imported = try importing(tensors)
        XCTAssertEqual(imported.spec.name, "fcn-32-32-bn")
        XCTAssertEqual(imported.stateTensors.map(\.0), network.stateTensors.map(\.0))
        XCTAssertEqual(imported.stateTensors.map(\.1.array), network.stateTensors.map(\.1.array))
        // Named layers fc1, bn1, fc2, bn2, fc3: the last is the readout.
        let named = network.stateTensors.map { ($0.0.replacingOccurrences(of: "readout.", with: "fc3."), $0.1) }
        XCTAssertEqual(try importing(named).stateTensors.map(\.1.array), network.stateTensors.map(\.1.array))
        // Our own names need no mapping; students must be named.
        XCTAssertEqual(try importing(network.stateTensors).spec.name, "fcn-32-32-bn")
        let student = Network.build(try ModelSpec(name: "student-c2-w1", inputShape: [1, 12, 12], classes: 10), seed: 1)
        XCTAssertEqual(try importing(student.stateTensors, model: "student-c2-w1").parameterCount, student.parameterCount)
        XCTAssertThrowsError(try importing(student.stateTensors)) { XCTAssertTrue("\($0)".contains("--model student"), "\($0)") }
    }

    /// A missing tensor, an extra one, a wrong shape, an unknown layout: one line each, naming
    /// the tensors that did not fit and the names expected.
    func testMisfitsAreOneLineNamingTheTensors() throws {
        let (_, tensors) = try torchResNet("resnet8")
        func message(_ t: [(String, Tensor)], model: String? = nil) -> String {
            do { _ = try importing(t, model: model); return "no error" } catch { return "\(error)" }
        }
        let missing = message(tensors.filter { $0.0 != "layer2.0.conv2.weight" })
        XCTAssertTrue(missing.contains("missing (our names): stage2.block1.conv2.weight"), missing)
        let extra = message(tensors + [("layer1.0.conv3.weight", Tensor(shape: [16, 16, 3, 3]))])
        XCTAssertTrue(extra.contains("do not fit resnet8: layer1.0.conv3.weight"), extra)
        let shape = message(tensors.map { $0.0 == "linear.weight" ? ($0.0, Tensor(shape: [10, 32])) : $0 })
        XCTAssertTrue(shape.contains("linear.weight [10, 32] (as fc.weight, resnet8 needs [10, 64])"), shape)
        let unknown = message([("encoder.w", Tensor(shape: [3, 3])), ("decoder.w", Tensor(shape: [3]))])
        XCTAssertTrue(unknown.contains("unknown layout (decoder.w, encoder.w)"), unknown)
        let wide = message(tensors.map { $0.0 == "conv1.weight" ? ($0.0, Tensor(shape: [32, 1, 3, 3])) : $0 })
        XCTAssertTrue(wide.contains("start with 16 channels"), wide)
        for text in [missing, extra, shape, unknown, wide] {
            XCTAssertFalse(text.contains("\n"), text)
            XCTAssertTrue(text.hasPrefix("net.safetensors: "), text)
        }
    }
}
