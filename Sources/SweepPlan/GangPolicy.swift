import Foundation
import SweepFile

/// How many ranks a training gets: idle ranks that no ready task needs join the trainings that
/// hold the critical path, as gangs that train one network data-parallel.
///
/// A pure function of the ready tasks, their urgencies and the spare ranks, used by the
/// coordinator and by `sweep plan`'s simulation alike, so the forecast predicts the run.
public enum GangPolicy {
    /// A mini-batch is cut into at most 16 image groups and a member owns whole groups, so a
    /// gang of more than 16 has members with nothing to do.
    public static let maxGang = 16

    /// Gang sizes worth having: each owns fewer groups per member than the size before it
    /// (7 members would still leave someone with 3 of 16 groups, as 6 do).
    public static let sizes = [1, 2, 3, 4, 5, 6, 8, 16]

    /// Seconds of training a member should get at least: below this, starting the gang (every
    /// member loads the dataset and builds the network) is not worth the rank.
    /// `LAYERSWEEP_GANG_MIN_SECONDS` overrides it (tests gang tiny trainings with 0).
    public static let minimumMemberSeconds = ProcessInfo.processInfo.environment["LAYERSWEEP_GANG_MIN_SECONDS"].flatMap(Double.init) ?? 20

    /// Fraction of a gang's ideal speed-up left after its per-step exchanges (measured with
    /// `mpirun -n 3` on one node: see the README's gang figures).
    public static let exchangeEfficiency = 0.92

    /// Expected speed-up of a gang of `members` over one rank: the member with the most groups
    /// sets the pace, and the exchanges cost a fixed fraction.
    public static func speedup(_ members: Int) -> Double {
        guard members > 1 else { return 1 }
        let slowest = (maxGang + members - 1) / members
        return Double(maxGang) / Double(slowest) * exchangeEfficiency
    }

    /// Whether a task may run on a gang: plain trainings with the label loss (IMP rounds,
    /// students and reuse runs train on one rank).
    public static func gangable(_ task: PlannedTask, study: any StudyPlanning.Type) -> Bool {
        task.kind == .train && study.gangable(task)
    }

    /// Gang sizes for `batch`, just taken from `scheduler` (most urgent first), given `spare` ranks
    /// beyond one per task: what the coordinator hands out and what `sweep plan` simulates.
    /// `duration` estimates a task's seconds on one rank.
    public static func sizes(for batch: [PlannedTask], scheduler: Scheduler, spare: Int, gangable: (PlannedTask) -> Bool,
                             duration: (PlannedTask) -> Double = { ScheduleForecast.seconds(forCost: $0.cost) }) -> [Int] {
        guard spare > 0 else { return Array(repeating: 1, count: batch.count) }
        return allocate(batch.map { t in
            let own = duration(t)
            // The remaining path in seconds: what waits on the task, plus the task itself.
            return (urgency: ScheduleForecast.seconds(forCost: scheduler.urgency(of: t.key) - t.cost) + own, seconds: own, gangable: gangable(t))
        }, spare: spare)
    }

    /// Gang sizes for `tasks` (about to be handed out, most urgent first), given `spare` ranks
    /// beyond one per task. `urgency` is the remaining path from the task (its own `seconds`
    /// included). Spare ranks go one gang step at a time to the training whose remaining path,
    /// its own part divided by its gang's speed-up, is longest: the finish times of the
    /// critical chains are evened out.
    public static func allocate(_ tasks: [(urgency: Double, seconds: Double, gangable: Bool)], spare: Int) -> [Int] {
        var size = Array(repeating: 1, count: tasks.count)
        var left = spare
        while left > 0 {
            var best: (index: Int, next: Int, finish: Double)?
            for (i, t) in tasks.enumerated() where t.gangable {
                guard let next = sizes.first(where: { $0 > size[i] }), next - size[i] <= left,
                      t.seconds / Double(next) >= minimumMemberSeconds else { continue }
                let finish = t.urgency - t.seconds + t.seconds / speedup(size[i])
                if best == nil || finish > best!.finish { best = (i, next, finish) }
            }
            guard let best else { break }
            left -= best.next - size[best.index]
            size[best.index] = best.next
        }
        return size
    }
}
