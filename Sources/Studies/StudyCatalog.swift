import SweepCore
import SweepFile

/// Every study, each in its folder next to this file. A new study is a folder and one entry here.
public enum StudyCatalog {
    /// In the order of `sweep` help and error messages; the first is the default `study:`.
    public static let all: [any SweepStudy.Type] = [
        ZeroingStudy.self, ReuseStudy.self, IterativePruningStudy.self, DistillationStudy.self, SensitivityStudy.self, NoopStudy.self,
    ]

    /// Makes these the studies sweep files can name (the program's first step).
    public static func install() { StudyRegistry.install(all) }
}
