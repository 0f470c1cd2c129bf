import Rendering
import SweepCore
import SweepRecords

/// A study that answers its question in report.html: its section leads the page (a study
/// without one, such as the runner's overhead sweep, gets the run's facts only).
public protocol ReportingStudy: SweepStudy {
    /// The report's answer: the first section of report.html.
    static func report(_ input: ReportInput, into m: inout Markup)
}
