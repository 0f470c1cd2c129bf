import CMPI
import Foundation
import TensorEngine

/// The MPI world this process belongs to. The main thread talks to the coordinator; on rank 0
/// a worker thread may meanwhile train in a gang, which needs MPI_THREAD_MULTIPLE.
public final class MPIWorld {
    public let rank: Int
    public let size: Int
    /// Whether threads other than the main one may call MPI (rank 0's worker joins gangs then).
    public let threadMultiple: Bool
    /// Ranks on this node (MPI_Comm_split_type shared), for dividing the node's cores.
    public let localSize: Int

    /// True when a launcher (mpirun, srun with PMIx) started this process.
    public static var isLaunched: Bool {
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"].contains { env[$0] != nil }
    }

    /// This process's rank as the launcher announced it, known before MPI starts (signal
    /// handlers go in first).
    public static var launchedRank: Int? {
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"].lazy.compactMap { env[$0].flatMap { Int($0) } }.first
    }

    public init() throws {
        var provided: Int32 = 0
        guard MPI_Init_thread(nil, nil, Int32(cmpi_thread_multiple()), &provided) == cmpi_success() else {
            throw MPIError.call("MPI_Init_thread")
        }
        threadMultiple = provided >= Int32(cmpi_thread_multiple())
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(cmpi_comm_world(), &r)
        MPI_Comm_size(cmpi_comm_world(), &s)
        var local = MPI_Comm(bitPattern: 0)
        var l: Int32 = 1
        if MPI_Comm_split_type(cmpi_comm_world(), Int32(cmpi_comm_type_shared()), r, cmpi_info_null(), &local) == cmpi_success() {
            MPI_Comm_size(local, &l)
            MPI_Comm_free(&local)
        }
        rank = Int(r)
        size = Int(s)
        localSize = Int(l)
    }

    public func finalize() { MPI_Finalize() }

    /// Every rank of the world as one gang (`mpirun -n N sweep train`: N ranks train one network).
    public func gangOfAll() throws -> GangLink {
        try MPIGang(world: self, assignment: GangAssignment(id: 1, members: Array(0..<size)))
    }

    /// Engine threads for a rank: the cores it may use, shared with the other ranks of its node.
    public var threadsPerRank: Int {
        max(1, min(Parallel.availableCores, ProcessInfo.processInfo.activeProcessorCount / max(1, localSize)))
    }

    /// Ends every rank at once (after an unrecoverable error on one).
    public func abort(_ code: Int32) -> Never {
        MPI_Abort(cmpi_comm_world(), code)
        exit(code)
    }

    static let toWorker: Int32 = 2
    static let toCoordinator: Int32 = 1

    func send(_ data: Data, to rank: Int, tag: Int32) throws {
        let rc = data.withUnsafeBytes { raw in
            MPI_Send(raw.baseAddress, Int32(raw.count), cmpi_byte(), Int32(rank), tag, cmpi_comm_world())
        }
        guard rc == cmpi_success() else { throw MPIError.call("MPI_Send to rank \(rank)") }
    }

    /// Receives the message `status` announced (after MPI_Probe or MPI_Iprobe).
    func receive(_ status: MPI_Status) throws -> (Int, Data) {
        var st = status
        var count: Int32 = 0
        MPI_Get_count(&st, cmpi_byte(), &count)
        var data = Data(count: Int(count))
        var recvStatus = MPI_Status()
        let rc = data.withUnsafeMutableBytes { raw in
            MPI_Recv(raw.baseAddress, count, cmpi_byte(), st.MPI_SOURCE, st.MPI_TAG, cmpi_comm_world(), &recvStatus)
        }
        guard rc == cmpi_success() else { throw MPIError.call("MPI_Recv") }
        return (Int(st.MPI_SOURCE), data)
    }

    func probe(from source: Int32, tag: Int32) throws -> MPI_Status {
        var status = MPI_Status()
        guard MPI_Probe(source, tag, cmpi_comm_world(), &status) == cmpi_success() else { throw MPIError.call("MPI_Probe") }
        return status
    }

    func iprobe(from source: Int32? = nil, tag: Int32) -> MPI_Status? {
        var status = MPI_Status()
        var flag: Int32 = 0
        MPI_Iprobe(source ?? cmpi_any_source(), tag, cmpi_comm_world(), &flag, &status)
        return flag != 0 ? status : nil
    }
}

/// An MPI call that failed.
public enum MPIError: Error, CustomStringConvertible {
    case call(String)
    public var description: String {
        switch self { case let .call(name): return "\(name) failed" }
    }
}

/// Rank 0's coordinator: remote workers over MPI, plus (optionally) a worker thread of its own
/// reached through a LocalHub. It polls both, backing off to 1 ms sleeps when idle so it does not
/// steal a core from its own worker.
final class MPICoordinatorLink: CoordinatorLink {
    let world: MPIWorld
    let local: LocalHub?
    let workers: [Int]

    init(world: MPIWorld, local: LocalHub?) {
        self.world = world
        self.local = local
        workers = (local?.workerIDs ?? []) + Array(1..<max(world.size, 1))
    }

    var gangWorkers: Set<Int> {
        Set(workers.filter { world.threadMultiple || !(local?.workerIDs.contains($0) ?? false) })
    }

    func send(_ message: Message, to worker: Int) throws {
        let data = try MessageCodec.encode(message)
        if let local, local.workerIDs.contains(worker) {
            local.inbox(worker).put(-1, data)
        } else {
            try world.send(data, to: worker, tag: MPIWorld.toWorker)
        }
    }

    func poll() throws -> (worker: Int, message: Message)? {
        if let (from, data) = local?.coordinatorInbox.tryTake() { return (from, try MessageCodec.decode(data)) }
        if let status = world.iprobe(tag: MPIWorld.toCoordinator) {
            let (from, data) = try world.receive(status)
            return (from, try MessageCodec.decode(data))
        }
        return nil
    }

    func receive(timeout: Double) throws -> (worker: Int, message: Message)? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        var wait = 0.000_01
        while true {
            if let m = try poll() { return m }
            if Date() >= deadline { return nil }
            if let local {
                if let (from, data) = local.coordinatorInbox.take(timeout: wait) { return (from, try MessageCodec.decode(data)) }
            } else {
                Thread.sleep(forTimeInterval: wait)
            }
            wait = min(wait * 2, 0.001)
        }
    }
}

/// A worker on rank > 0. It waits for the coordinator's next message by polling with a growing
/// sleep (10 µs to 2 ms) rather than in MPI_Probe, which busy-polls: an idle rank must leave its
/// core to the ranks that compute (and to the coordinator) instead of spinning on it.
final class MPIWorkerLink: WorkerLink {
    let world: MPIWorld
    var id: Int { world.rank }

    init(world: MPIWorld) { self.world = world }

    func send(_ message: Message) throws {
        try world.send(try MessageCodec.encode(message), to: 0, tag: MPIWorld.toCoordinator)
    }

    func receive() throws -> Message {
        var wait: useconds_t = 10
        while true {
            if let status = world.iprobe(from: 0, tag: MPIWorld.toWorker) {
                return try MessageCodec.decode(try world.receive(status).1)
            }
            usleep(wait)
            wait = min(wait * 2, 2_000)
        }
    }

    func joinGang(_ gang: GangAssignment) throws -> GangLink { try MPIGang(world: world, assignment: gang) }
}

/// A training gang over an MPI sub-communicator of its members (MPI_Comm_create_group: only the
/// members take part in making it, so gangs form while other ranks go on with their tasks).
final class MPIGang: GangLink {
    static let firstTag: Int32 = 100
    private var comm = MPI_Comm(bitPattern: 0)
    let rank: Int
    let size: Int

    init(world: MPIWorld, assignment: GangAssignment) throws {
        var worldGroup = MPI_Group(bitPattern: 0), group = MPI_Group(bitPattern: 0)
        MPI_Comm_group(cmpi_comm_world(), &worldGroup)
        var ranks = assignment.members.map(Int32.init)
        MPI_Group_incl(worldGroup, Int32(ranks.count), &ranks, &group)
        // The tag travels on MPI_COMM_WORLD while the group forms: keep it clear of the
        // coordinator's and workers' tags (1 and 2), or their probes would take its messages.
        let rc = MPI_Comm_create_group(cmpi_comm_world(), group, MPIGang.firstTag + Int32(assignment.id % 30_000), &comm)
        MPI_Group_free(&group)
        MPI_Group_free(&worldGroup)
        guard rc == cmpi_success() else { throw MPIError.call("MPI_Comm_create_group for gang \(assignment.members)") }
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(comm, &r)
        MPI_Comm_size(comm, &s)
        rank = Int(r)
        size = Int(s)
    }

    deinit { MPI_Comm_free(&comm) }

    func allGather(_ local: UnsafeBufferPointer<Double>, counts: [Int], into all: UnsafeMutableBufferPointer<Double>) {
        var counts32 = counts.map(Int32.init)
        var offsets = [Int32](repeating: 0, count: counts.count)
        for m in 1..<max(counts.count, 1) { offsets[m] = offsets[m - 1] + counts32[m - 1] }
        MPI_Allgatherv(local.baseAddress, Int32(local.count), cmpi_double(), all.baseAddress, &counts32, &offsets, cmpi_double(), comm)
    }

    func send(_ values: UnsafeBufferPointer<Float>, to member: Int) {
        MPI_Send(values.baseAddress, Int32(values.count), cmpi_float(), Int32(member), 7, comm)
    }

    func receive(_ values: UnsafeMutableBufferPointer<Float>, from member: Int) {
        MPI_Recv(values.baseAddress, Int32(values.count), cmpi_float(), Int32(member), 7, comm, cmpi_status_ignore())
    }

    func broadcast(_ values: UnsafeMutableBufferPointer<Float>, root: Int) {
        MPI_Bcast(values.baseAddress, Int32(values.count), cmpi_float(), Int32(root), comm)
    }
}
