import Foundation
import TensorEngine

/// Networks trained elsewhere: a safetensors file written from a PyTorch `state_dict`
/// (`safetensors.torch.save_file(model.state_dict(), path)`) becomes one of our networks.
///
/// Tensor names are mapped to ours first, then the architecture is read off the mapped names and
/// shapes (or taken from `model` when given: plain nets have the parameters of option-A ResNets,
/// and students are not inferred). Names understood:
/// - CIFAR ResNets: `conv1`, `bn1`, `layer{1,2,3}.{b}.conv1/bn1/conv2/bn2`, option-B shortcuts as
///   `shortcut.0/1` or `downsample.0/1`, and `fc` or `linear`;
/// - fully connected nets as `nn.Sequential` (`0.weight`, `1.running_mean`, ..., with or without a
///   prefix such as `layers.`): each Linear, optionally followed by BatchNorm1d, the last Linear
///   the readout; or as named layers `fc1`, `bn1`, ..., `fcK` (the last the readout);
/// - our own names (`stem.conv`, `stage1.block1.conv1`, `fc1`, `readout`, students' `conv0`, ...).
/// `num_batches_tracked` counters are ignored.
public enum TorchImport {
    /// The network `file` holds, for inputs of `inputShape`. Anything unmatched or missing is one
    /// error naming the tensors that did not fit and the names expected.
    public static func network(from file: SafeTensorsFile, path: String, inputShape: [Int], model: String? = nil) throws -> Network {
        let tensors = wrapperPrefixesRemoved(file.tensors.filter { !$0.0.hasSuffix("num_batches_tracked") })
        let renamed = try rename(tensors, path: path)
        let name = try model ?? inferModel(renamed, path: path)
        guard let classes = classes(renamed, model: name) else {
            throw SafeTensorsError(file: path, problem: "no classifier found (expected fc.weight, linear.weight, readout.weight or a last Linear layer)")
        }
        let spec: ModelSpec
        do { spec = try ModelSpec(name: name, inputShape: inputShape, classes: classes) } catch let error as ModelError {
            throw SafeTensorsError(file: path, problem: "\(error)")
        }
        let network = Network.build(spec, seed: 0)
        var stored: [String: Renamed] = [:]
        for tensor in renamed {
            if let other = stored[tensor.ours] {
                throw SafeTensorsError(file: path, problem: "'\(other.theirs)' and '\(tensor.theirs)' are both \(tensor.ours) to \(name): the file holds two networks' tensors (keep one)")
            }
            stored[tensor.ours] = tensor
        }
        let expected = network.stateTensors
        let wanted = Set(expected.map(\.0))
        try foldBiasesIntoBatchNorm(&stored, wanted: wanted, path: path)
        var misfits = stored.values.filter { !wanted.contains($0.ours) }.map { "\($0.theirs) (no \($0.ours) in \(name))" }
        var missing: [String] = []
        for (ours, tensor) in expected {
            guard let source = stored[ours] else { missing.append(ours); continue }
            guard source.tensor.shape == tensor.shape else {
                misfits.append("\(source.theirs) \(source.tensor.shape) (as \(ours), \(name) needs \(tensor.shape))")
                continue
            }
            try Checkpoint.checkValues(source.tensor, name: source.theirs, path: path)
            tensor.assign(source.tensor)
        }
        guard misfits.isEmpty, missing.isEmpty else {
            var parts: [String] = []
            if !misfits.isEmpty { parts.append("tensors that do not fit \(name): \(listed(misfits.sorted()))") }
            if !missing.isEmpty { parts.append("missing (our names): \(listed(missing))") }
            throw SafeTensorsError(file: path, problem: parts.joined(separator: "; "))
        }
        return network
    }

    /// The first few of `items` and how many more: an error stays one readable line.
    public static func listed(_ items: [String], first: Int = 4) -> String {
        items.prefix(first).joined(separator: ", ") + (items.count > first ? ", and \(items.count - first) more" : "")
    }

    /// PyTorch's `nn.Linear` and `nn.Conv2d` have a bias by default, also when a batch norm
    /// follows; ours have none there. In inference the norm subtracts its running mean right after
    /// the bias is added, so the bias moves into the mean exactly: BN(y + b) uses (y + b − μ) =
    /// (y − (μ − b)). (In training the norm's batch mean cancels the bias too.)
    static func foldBiasesIntoBatchNorm(_ stored: inout [String: Renamed], wanted: Set<String>, path: String) throws {
        for (name, bias) in stored where name.hasSuffix(".bias") && !wanted.contains(name) {
            let layer = String(name.dropLast(".bias".count))
            guard let norm = followingNorm(of: layer), wanted.contains(norm + ".running_mean"),
                  let mean = stored[norm + ".running_mean"], mean.tensor.shape == bias.tensor.shape else { continue }
            try Checkpoint.checkValues(bias.tensor, name: bias.theirs, path: path)
            let folded = mean.tensor.copy()
            for i in 0..<folded.count { folded.data[i] -= bias.tensor.data[i] }
            stored[norm + ".running_mean"] = Renamed(theirs: mean.theirs, ours: mean.ours, tensor: folded)
            stored[name] = nil
        }
    }

    /// The batch norm right after a layer, by our names: `fc2` → `bn2`, `stage1.block1.conv1` →
    /// `…bn1`, `stem.conv` → `stem.bn`, `shortcut.conv` → `shortcut.bn`, a student's `fc` → `fc_bn`.
    static func followingNorm(of layer: String) -> String? {
        var parts = layer.split(separator: ".").map(String.init)
        guard let last = parts.last else { return nil }
        if last == "conv" { parts[parts.count - 1] = "bn" }
        else if last == "fc" { parts[parts.count - 1] = "fc_bn" }
        else if let digits = ["conv", "fc"].first(where: { last.hasPrefix($0) }).map({ last.dropFirst($0.count) }), !digits.isEmpty, Int(digits) != nil {
            parts[parts.count - 1] = "bn" + digits
        } else { return nil }
        return parts.joined(separator: ".")
    }

    /// Names without the prefixes wrappers add to every tensor: `module.` (DataParallel and
    /// DistributedDataParallel) and `_orig_mod.` (torch.compile), in any nesting.
    static func wrapperPrefixesRemoved(_ tensors: [(String, Tensor)]) -> [(String, Tensor)] {
        var out = tensors
        while let prefix = ["module.", "_orig_mod."].first(where: { p in !out.isEmpty && out.allSatisfy { $0.0.hasPrefix(p) } }) {
            out = out.map { (String($0.0.dropFirst(prefix.count)), $0.1) }
        }
        return out
    }

    /// A tensor under its name in the file and under ours.
    struct Renamed {
        let theirs: String
        let ours: String
        let tensor: Tensor
    }

    /// Our name for every tensor; a name in no known layout is kept (and reported if unused).
    static func rename(_ tensors: [(String, Tensor)], path: String) throws -> [Renamed] {
        let names = tensors.map(\.0)
        if names.contains("conv1.weight") && names.contains(where: { $0.hasPrefix("layer1.") }) {
            return tensors.map { Renamed(theirs: $0.0, ours: resnetName($0.0), tensor: $0.1) }
        }
        if let sequential = sequentialNames(tensors) { return sequential }
        // A named MLP (fc1, bn1, fc2, ..., fcK): its last fc layer is our readout.
        let fcs = names.compactMap { n -> Int? in
            guard n.hasPrefix("fc"), let dot = n.firstIndex(of: ".") else { return nil }
            return Int(n[n.index(n.startIndex, offsetBy: 2)..<dot])
        }
        if let last = fcs.max(), last > 1, !names.contains("readout.weight"), !names.contains(where: { $0.hasPrefix("conv") || $0.hasPrefix("stem.") }) {
            return tensors.map { t in
                let ours = t.0.hasPrefix("fc\(last).") ? "readout" + t.0.dropFirst("fc\(last)".count) : t.0
                return Renamed(theirs: t.0, ours: ours, tensor: t.1)
            }
        }
        return tensors.map { Renamed(theirs: $0.0, ours: $0.0, tensor: $0.1) }
    }

    /// `layer2.0.conv1.weight` → `stage2.block1.conv1.weight`, `bn1.bias` → `stem.bn.bias`, ...
    static func resnetName(_ name: String) -> String {
        var parts = name.split(separator: ".").map(String.init)
        guard let first = parts.first else { return name }
        if first == "conv1" { return (["stem", "conv"] + parts.dropFirst()).joined(separator: ".") }
        if first == "bn1" { return (["stem", "bn"] + parts.dropFirst()).joined(separator: ".") }
        if first == "linear" { parts[0] = "fc"; return parts.joined(separator: ".") }
        guard first.hasPrefix("layer"), let stage = Int(first.dropFirst(5)), parts.count >= 3, let block = Int(parts[1]) else { return name }
        var rest = Array(parts.dropFirst(2))
        if ["shortcut", "downsample"].contains(rest[0]), rest.count >= 2 {
            let module = rest[1] == "0" ? "conv" : rest[1] == "1" ? "bn" : rest[1]
            rest = ["shortcut", module] + rest.dropFirst(2)
        }
        return (["stage\(stage)", "block\(block + 1)"] + rest).joined(separator: ".")
    }

    /// An `nn.Sequential` of Linear (+ BatchNorm1d) layers: modules by index, in index order.
    static func sequentialNames(_ tensors: [(String, Tensor)]) -> [Renamed]? {
        // Module path (all but the last component) → its tensors; each path must end in an index.
        var modules: [(index: Int, path: String)] = []
        var byPath: [String: [(String, Tensor)]] = [:]
        for (name, tensor) in tensors {
            guard let dot = name.lastIndex(of: ".") else { return nil }
            let path = String(name[..<dot])
            guard let index = Int(path.split(separator: ".").last ?? "") else { return nil }
            if byPath[path] == nil { modules.append((index, path)) }
            byPath[path, default: []].append((String(name[name.index(after: dot)...]), tensor))
        }
        modules.sort { $0.index < $1.index }
        let linears = modules.filter { m in byPath[m.path]!.contains { $0.0 == "weight" && $0.1.rank == 2 } }
        guard !linears.isEmpty, modules.allSatisfy({ m in byPath[m.path]!.allSatisfy { $0.1.rank <= 2 } }) else { return nil }
        var out: [Renamed] = []
        var hidden = 0
        for m in modules {
            let isLinear = linears.contains { $0.path == m.path }
            let ours: String
            if isLinear {
                ours = m.path == linears.last!.path ? "readout" : "fc\(hidden + 1)"
                if m.path != linears.last!.path { hidden += 1 }
            } else {
                ours = "bn\(hidden)"
            }
            for (local, tensor) in byPath[m.path]! { out.append(Renamed(theirs: "\(m.path).\(local)", ours: "\(ours).\(local)", tensor: tensor)) }
        }
        return out
    }

    /// The model name our names and shapes describe: `resnet{6n+2}[-b]` or `fcn-W1-W2...[-bn]`.
    static func inferModel(_ tensors: [Renamed], path: String) throws -> String {
        let byName = Dictionary(tensors.map { ($0.ours, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        if let stem = byName["stem.conv.weight"] {
            guard stem.shape.count == 4, stem.shape[0] == 16 else {
                throw SafeTensorsError(file: path, problem: "the first convolution has shape \(stem.shape); layersweep's CIFAR ResNets start with 16 channels of 3x3 kernels")
            }
            var blocks: [Int] = []
            for stage in 1...3 {
                let prefix = "stage\(stage).block"
                let count = Set(tensors.compactMap { t -> Int? in
                    guard t.ours.hasPrefix(prefix) else { return nil }
                    return Int(t.ours.dropFirst(prefix.count).prefix { $0.isNumber })
                }).count
                blocks.append(count)
            }
            guard blocks[0] > 0, blocks.allSatisfy({ $0 == blocks[0] }) else {
                throw SafeTensorsError(file: path, problem: "stages have \(blocks.map(String.init).joined(separator: "/")) blocks; a CIFAR ResNet has the same number in each of its 3 stages")
            }
            let projection = tensors.contains { $0.ours.contains(".shortcut.conv.") }
            return "resnet\(6 * blocks[0] + 2)\(projection ? "-b" : "")"
        }
        if byName["readout.weight"] != nil, byName["fc_bn.weight"] != nil || tensors.contains(where: { $0.ours.hasPrefix("conv") }) {
            throw SafeTensorsError(file: path, problem: "this looks like a layersweep student: name its model (e.g. --model student-c2-w1)")
        }
        if byName["readout.weight"] != nil {
            var widths: [Int] = []
            while let w = byName["fc\(widths.count + 1).weight"], w.rank == 2 { widths.append(w.shape[0]) }
            let bn = byName["bn1.weight"] != nil
            return "fcn" + widths.map { "-\($0)" }.joined() + (bn ? "-bn" : "")
        }
        let names = tensors.map(\.theirs).sorted().prefix(12).joined(separator: ", ")
        throw SafeTensorsError(file: path, problem: "unknown layout (\(names)\(tensors.count > 12 ? ", ..." : "")): expected a CIFAR ResNet (conv1, bn1, layer1.0.conv1, ..., fc), an nn.Sequential of Linear/BatchNorm1d layers, or layersweep's own names")
    }

    /// Classes: the rows of the classifier's weight (`fc` in ResNets, `readout` elsewhere).
    static func classes(_ tensors: [Renamed], model: String) -> Int? {
        let resnet = model.lowercased().hasPrefix("resnet") || model.lowercased().hasPrefix("plain")
        for name in resnet ? ["fc.weight"] : ["readout.weight"] {
            if let t = tensors.first(where: { $0.ours == name }), t.tensor.rank == 2 { return t.tensor.shape[0] }
        }
        return nil
    }
}
