import Foundation

/// The look of every figure, carried inside each SVG: a figure saved on its own (`figures/`) or
/// opened in another program reads as it does in the report. Text is 11–12 px at the figure's
/// own size; the report scrolls a wide figure sideways rather than shrinking its text.
public enum FigureStyle {
    public static let css = """
    text { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 11px; fill: #111; }
    .colhead { font-weight: 600; font-size: 12px; } .rowhead { font-size: 11px; } .transition { font-weight: 700; }
    .value { font-size: 11px; } .tick, .axis { font-size: 11px; fill: #333; }
    .stage-boundary { stroke: #222; stroke-width: 1.2; } .axisline { stroke: #444; } .axisline.minor { stroke: #888; }
    .trivial-mark { fill: none; stroke: #1a7f37; stroke-width: 1.5; stroke-dasharray: 3 2; }
    .strip { stroke-width: 0.6; opacity: 0.5; } .seed-dot { opacity: 0.9; }
    .band { opacity: 0.18; stroke: none; }
    """
}
