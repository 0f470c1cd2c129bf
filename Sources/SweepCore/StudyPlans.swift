import Datasets
import Foundation
import Models
import Studies
import TensorEngine

/// Task graphs of the pruning, distillation and reuse studies (the README describes each).
extension Plan {
    /// Per (dataset, model, seed): the dense training (round 0), a chain of IMP rounds each
    /// depending on the one before, and one-shot controls (rounds 2...) that depend on round 0 only, so
    /// chains of different seeds, widths and the controls all run in parallel.
    static func expandPruning(_ spec: SweepSpec) throws -> Plan {
        var tasks: [PlannedTask] = []
        let p = spec.pruning
        let digits = String(p.rounds).count
        func roundName(_ k: Int) -> String { String(repeating: "0", count: digits - String(k).count) + String(k) }
        for dataset in spec.datasets {
            let d = dataset.description
            for model in spec.models {
                let (macs, _) = try measure(model, on: dataset)
                let steps = Double(spec.training.epochs * ((d.train + spec.training.batchSize - 1) / spec.training.batchSize))
                let trainCost = 3 * macs * Double(d.train) * Double(spec.training.epochs) + macs * Double(d.test)
                let retrainCost = trainCost * max(0.05, 1 - Double(p.rewindStep) / max(steps, 1))
                for s in spec.seeds {
                    let prefix = "\(dataset.name)/\(model)/seed\(s)"
                    let dense = "\(prefix)/round\(roundName(0))"
                    let chainSeed = seed(spec, dense)
                    func task(_ key: String, _ kind: TaskKind, round: Int, variant: String, after: [String], cost: Double) -> PlannedTask {
                        var t = PlannedTask(key: key, kind: kind, dataset: dataset.name, model: model, seedIndex: s, unit: nil, mask: nil,
                                            dependencies: after, cost: cost, seed: chainSeed)
                        t.round = round
                        t.variant = variant
                        t.baselineKey = dense
                        return t
                    }
                    tasks.append(task(dense, .train, round: 0, variant: "imp", after: [], cost: trainCost))
                    for k in 1...max(p.rounds, 1) where p.rounds > 0 {
                        tasks.append(task("\(prefix)/round\(roundName(k))", .prune, round: k, variant: "imp",
                                          after: ["\(prefix)/round\(roundName(k - 1))"], cost: retrainCost))
                        // One-shot to round 1's sparsity is IMP round 1 itself: not run twice.
                        if p.oneShot && k >= 2 {
                            tasks.append(task("\(prefix)/oneshot\(roundName(k))", .oneShot, round: k, variant: "oneshot",
                                              after: [dense], cost: retrainCost))
                        }
                    }
                }
            }
        }
        return try Plan(spec: spec, tasks: tasks)
    }

    /// Per (dataset, teacher model): `teachers` teacher trainings, one logits task over all of
    /// them, and students per (conv layers, budget, seed, loss); label-trained students do not
    /// wait for any teacher.
    static func expandDistillation(_ spec: SweepSpec) throws -> Plan {
        var tasks: [PlannedTask] = []
        let dist = spec.distillation
        let teacherEpochs = (dist.teacherTraining ?? spec.training).epochs
        for dataset in spec.datasets {
            let d = dataset.description
            var logitsKeys: [String] = []
            for model in spec.models {
                let (macs, _) = try measure(model, on: dataset)
                let teacherKeys = (0..<dist.teachers).map { "\(dataset.name)/\(model)/teacher\($0)/train" }
                for (t, key) in teacherKeys.enumerated() {
                    var task = PlannedTask(key: key, kind: .train, dataset: dataset.name, model: model, seedIndex: t, unit: nil, mask: nil,
                                           dependencies: [], cost: 3 * macs * Double(d.train * teacherEpochs) + macs * Double(d.test),
                                           seed: seed(spec, key))
                    task.variant = "teacher"
                    tasks.append(task)
                }
                let logitsKey = "\(dataset.name)/\(model)/teacher-logits"
                var logits = PlannedTask(key: logitsKey, kind: .logits, dataset: dataset.name, model: model, seedIndex: 0, unit: nil,
                                         mask: nil, dependencies: teacherKeys,
                                         cost: macs * Double((d.train + d.test) * dist.teachers), seed: seed(spec, logitsKey))
                logits.variant = "teacher"
                logits.baselineKey = logitsKey
                tasks.append(logits)
                logitsKeys.append(logitsKey)
            }
            for conv in dist.convLayers {
                for budget in dist.budgets {
                    let student = Distillation.student(convLayers: conv, budget: budget, inputShape: d.shape, classes: d.classes)
                    let (macs, _) = try measure(student.name, on: dataset)
                    let cost = 3 * macs * Double(d.train * spec.training.epochs) + macs * Double(d.test)
                    for s in spec.seeds {
                        let prefix = "\(dataset.name)/c\(conv)-b\(budget)/seed\(s)"
                        func task(_ key: String, loss: DistillationLoss, teacher: String?, logitsKey: String) -> PlannedTask {
                            var t = PlannedTask(key: key, kind: .student, dataset: dataset.name, model: student.name, seedIndex: s,
                                                unit: nil, mask: nil, dependencies: teacher == nil ? [] : [logitsKey], cost: cost,
                                                seed: seed(spec, key))
                            t.variant = loss.rawValue
                            t.budget = budget
                            t.source = teacher
                            t.baselineKey = logitsKey
                            return t
                        }
                        for loss in dist.losses {
                            switch loss {
                            case .labels:
                                tasks.append(task("\(prefix)/labels", loss: .labels, teacher: nil, logitsKey: logitsKeys[0]))
                            case .logits:
                                for (model, logitsKey) in zip(spec.models, logitsKeys) {
                                    tasks.append(task("\(prefix)/logits-\(model)", loss: .logits, teacher: model, logitsKey: logitsKey))
                                }
                            }
                        }
                    }
                }
            }
        }
        return try Plan(spec: spec, tasks: tasks)
    }

    /// Per (dataset in any pair, model, seed) a training from scratch; per (pair, model, seed,
    /// reused layer or prefix, mode) a reuse training that waits for both the source's and the
    /// target's scratch training (the first gives the kernels, the second the baseline and the
    /// kernels to compare with).
    static func expandReuse(_ spec: SweepSpec) throws -> Plan {
        var tasks: [PlannedTask] = []
        let r = spec.reuse
        let used = Set(r.pairs.flatMap { [$0.source, $0.target] })
        let sources = Set(r.pairs.map(\.source))
        for model in spec.models {
            // Networks trained elsewhere (on the pairs' source dataset) replace the source trainings.
            let files = spec.checkpoints[model]
            let seeds = files.map { Array($0.indices) } ?? spec.seeds
            func sourceKey(_ source: String, _ s: Int) -> String {
                guard let files else { return "\(source)/\(model)/seed\(s)/train" }
                return "\(source)/\(model)/\(ImportedNetworks.keySegment(spec, file: files[s], index: s))/load"
            }
            for dataset in spec.datasets where used.contains(dataset.name) {
                let d = dataset.description
                let (macs, _) = try measure(model, on: dataset)
                for s in seeds {
                    if let files, sources.contains(dataset.name) {
                        var t = PlannedTask(key: sourceKey(dataset.name, s), kind: .load, dataset: dataset.name, model: model, seedIndex: s,
                                            unit: nil, mask: nil, dependencies: [], cost: 1, seed: seed(spec, sourceKey(dataset.name, s)))
                        t.source = files[s]
                        tasks.append(t)
                        continue
                    }
                    let key = "\(dataset.name)/\(model)/seed\(s)/train"
                    var t = PlannedTask(key: key, kind: .train, dataset: dataset.name, model: model, seedIndex: s, unit: nil, mask: nil,
                                        dependencies: [], cost: 3 * macs * Double(d.train * spec.training.epochs) + macs * Double(d.test),
                                        seed: seed(spec, key))
                    t.baselineKey = key
                    tasks.append(t)
                }
            }
            for pair in r.pairs {
                guard let target = spec.datasets.first(where: { $0.name == pair.target }) else { continue }
                let d = target.description
                let (macs, network) = try measure(model, on: target)
                let convs = network.units.filter { $0.kind == .conv }
                var points: [(name: String, units: [String])] = LayerMatcher.select(network.units, spec.layers)
                    .filter { $0.kind == .conv }.map { ($0.name, [$0.name]) }
                for k in r.prefixes where k >= 1 && k <= convs.count {
                    points.append(("first\(k)", convs.prefix(k).map(\.name)))
                }
                let cost = 3 * macs * Double(d.train * spec.training.epochs) + macs * Double(d.test)
                for s in seeds {
                    let fromKey = sourceKey(pair.source, s)
                    let targetKey = "\(pair.target)/\(model)/seed\(s)/train"
                    let from = files.map { "from-\(pair.source)-" + ImportedNetworks.keySegment(spec, file: $0[s], index: s) } ?? "from-\(pair.source)"
                    for point in points {
                        for mode in r.modes {
                            let key = "\(pair.target)/\(model)/seed\(s)/\(from)/\(point.name)/\(mode.rawValue)"
                            var t = PlannedTask(key: key, kind: .reuse, dataset: pair.target, model: model, seedIndex: s, unit: point.name,
                                                mask: nil, dependencies: [fromKey, targetKey], cost: cost, seed: seed(spec, key))
                            t.source = pair.source
                            t.units = point.units
                            t.variant = mode.rawValue
                            t.baselineKey = targetKey
                            tasks.append(t)
                        }
                    }
                }
            }
        }
        return try Plan(spec: spec, tasks: tasks)
    }
}
