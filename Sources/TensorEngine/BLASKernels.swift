import CBLAS
import Foundation

/// Which of OpenBLAS's kernel sets the process runs.
///
/// Debian's OpenBLAS 0.3.21 picks its kernels by CPU model at load time, and on a CPU newer than
/// it knows (Sapphire Rapids, say) it falls back to "Prescott", its generic SSE3 kernels: 3-4x
/// slower on the fully connected networks' GEMMs. The choice can only be changed before the
/// library loads, through `OPENBLAS_CORETYPE`, so `sweep` re-executes itself once with the
/// variable set (`relaunchForNativeKernels`).
public enum BLASKernels {
    /// The kernel set OpenBLAS chose in this process ("Haswell", "SkylakeX", "Zen", "Prescott", ...).
    public static var core: String { String(cString: openblas_get_corename()) }

    /// The kernel set to ask for instead of `core`, or nil when `core` is already right: only a
    /// generic fallback is replaced, by SkylakeX on AVX-512 CPUs and Haswell on AVX2 + FMA ones.
    public static func replacement(core: String, cpuFlags: Set<String>) -> String? {
        guard ["prescott", "core2", "nehalem", "katmai", "generic"].contains(core.lowercased()) else { return nil }
        if ["avx512f", "avx512vl", "avx512bw", "avx512dq", "avx512cd"].allSatisfy(cpuFlags.contains) { return "SkylakeX" }
        if ["avx2", "fma"].allSatisfy(cpuFlags.contains) { return "Haswell" }
        return nil
    }

    /// The CPU's feature flags from /proc/cpuinfo (empty where there is none).
    public static var cpuFlags: Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }

    /// Re-executes this program with `OPENBLAS_CORETYPE` set when OpenBLAS fell back to generic
    /// kernels on a CPU that has better ones; returns when nothing needs doing. Call it first
    /// thing, before MPI starts (the process keeps its PID, so `mpirun` and Slurm see no change).
    /// A user's own `OPENBLAS_CORETYPE` is respected.
    public static func relaunchForNativeKernels() {
        let environment = ProcessInfo.processInfo.environment
        guard environment["OPENBLAS_CORETYPE"] == nil, environment[relaunchedMarker] == nil,
              let better = replacement(core: core, cpuFlags: cpuFlags) else { return }
        setenv("OPENBLAS_CORETYPE", better, 1)
        setenv(relaunchedMarker, "1", 1)
        let arguments = CommandLine.arguments
        var argv = arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &argv)
        // exec failed (no /proc?): carry on with the slower kernels rather than stop.
        unsetenv("OPENBLAS_CORETYPE")
    }

    /// Runs `body` with OpenBLAS using `threads` threads (the engine otherwise pins it to one).
    public static func withThreads(_ threads: Int, _ body: () -> Void) {
        openblas_set_num_threads(Int32(threads))
        defer { openblas_set_num_threads(1) }
        body()
    }

    /// Set on the re-executed process, so that it never loops.
    static let relaunchedMarker = "LAYERSWEEP_BLAS_RELAUNCHED"
}
