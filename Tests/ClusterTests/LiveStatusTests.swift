@testable import Cluster
import StudyTestSupport
import XCTest

/// The live status lines: rewritten in place on a terminal, plain lines anywhere else.
final class LiveStatusTests: StudyTestCase {
    func testOnATerminalStatusLinesAreRewrittenUnderTheLog() {
        var out = ""
        let status = LiveStatus(live: true, width: 40) { out += $0 }
        status.set(2, "d/m/seed1/train")
        status.set(0, "d/m/seed0/train", plain: "never on a terminal")
        XCTAssertEqual(out, "  rank 2: d/m/seed1/train\n", "the second redraw waits (a quarter second)")
        out = ""
        status.log("[1/9] done")
        XCTAssertEqual(out, "\u{1B}[1F\u{1B}[J[1/9] done\n  rank 0: d/m/seed0/train\n  rank 2: d/m/seed1/train\n",
                       "erase the one line drawn, print the log line, redraw both ranks in order")
        out = ""
        status.set(0, "d/m/seed0/train: epoch 3/15  loss 0.41  acc 0.8600  lr 0.0700  812 img/s  12.3s")
        status.set(2, nil)
        XCTAssertTrue(out.hasSuffix("\u{1B}[2F\u{1B}[J  rank 0: d/m/seed0/train: epoch 3/15 …\n"), out.debugDescription)
        out = ""
        status.finish()
        XCTAssertEqual(out, "\u{1B}[1F\u{1B}[J")
    }

    func testInALogEveryProgressLineIsPrintedOncePlain() {
        var out = ""
        let status = LiveStatus(live: false) { out += $0 }
        status.set(1, "d/m/seed0/train")
        status.set(1, "d/m/seed0/train: epoch 1/2", plain: "  d/m/seed0/train (rank 1): epoch 1/2")
        status.log("[1/3] d/m/seed0 train acc 0.9 rank 1 1.0s")
        status.set(1, nil)
        status.finish()
        XCTAssertEqual(out, "  d/m/seed0/train (rank 1): epoch 1/2\n[1/3] d/m/seed0 train acc 0.9 rank 1 1.0s\n")
    }
}
