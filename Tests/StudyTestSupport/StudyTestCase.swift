import Studies
import XCTest

/// A test case that runs with every study installed, as `sweep` runs (`StudyCatalog.install()`
/// is its first step): sweep files name studies, and SweepCore knows them only once installed.
open class StudyTestCase: XCTestCase {
    override open class func setUp() {
        super.setUp()
        StudyCatalog.install()
    }
}
