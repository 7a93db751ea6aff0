import ArgumentParser
import Dispatch
import FuseAdapter
import Glibc
import LogFS
import Synchronization
import SystemBase
import SystemPackage

/// Set by SIGINT while `bklogfs warm` reads: no file is started after it, and the file being read stops
/// at its next chunk.
private let warmInterrupted = Atomic<Bool>(false)

struct WarmCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "warm",
    abstract: "Reads the logs under paths of a mount into its disk cache, ahead of reading them offline.",
    discussion: """
      Every file under the paths (files, or directories walked whole; links are not followed) is read \
      through the mount to its end, --jobs at a time; the mount's own readahead, retries, rate limits \
      and disk cache do the rest, so what is cached already is read at local speed and a second run \
      fetches only what the first did not. Archived logs (GLACIER, DEEP_ARCHIVE) are skipped: bring \
      them back with bklogfs restore first. When the files would not fit in the mount's disk cache \
      (--cache-size), nothing is read unless --anyway is given. Ctrl-C stops after the reads under \
      way; run the same command again to go on.
      """)

  @Argument(help: "Files or directories of a bklogfs mount.", completion: .file())
  var paths: [String]

  @Option(help: ArgumentHelp("Files read at once.", valueName: "count"))
  var jobs = 4

  @Flag(help: "Read the files even when they would not fit in the mount's disk cache, or it keeps none.")
  var anyway = false

  @Option(
    help: ArgumentHelp(
      "Seconds between progress lines when standard error is not a terminal.", valueName: "seconds"))
  var progressInterval: Double = 10

  func validate() throws {
    guard (1...64).contains(jobs) else { throw ValidationError("--jobs takes a whole number from 1 to 64.") }
    guard progressInterval.isFinite, progressInterval >= 0 else {
      throw ValidationError("--progress-interval takes a number of seconds, 0 or more.")
    }
  }

  func run() throws {
    let found = try WarmPlan.find(paths)
    for index in found.roots.indices where !anyway {
      if let problem = found.fitProblem(mount: index) {
        throw MountFailure(problem + " (or give --anyway to read them regardless)")
      }
    }
    var intro = "\(found.files.count) file\(found.files.count == 1 ? "" : "s") to warm, \(humanBytes(found.bytes))"
    if !found.archived.isEmpty { intro += "; \(found.archived.count) archived, skipped" }
    print(intro)

    signal(SIGINT) { _ in
      warmInterrupted.store(true, ordering: .relaxed)
      // A second Ctrl-C ends it at once.
      signal(SIGINT, SIG_DFL)
    }
    let progress = WarmProgress(plan: found, interval: progressInterval)
    let outcomes = WarmOutcomes()
    let next = Atomic<Int>(0)
    let files = found.files
    let group = DispatchGroup()
    for _ in 0..<min(jobs, files.count) {
      group.enter()
      startDetachedThread {
        defer { group.leave() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        while !warmInterrupted.load(ordering: .relaxed) {
          let index = next.add(1, ordering: .relaxed).oldValue
          guard index < files.count else { return }
          outcomes.record(Self.read(files[index].path, buffer: buffer, progress: progress), of: files[index].path)
          progress.fileDone()
        }
      }
    }
    group.wait()
    let interrupted = warmInterrupted.load(ordering: .relaxed)
    if !interrupted { progress.waitForDiskWrites() }
    progress.finish()
    try summarize(found, progress: progress, outcomes: outcomes, interrupted: interrupted)
  }

  /// How reading one file went.
  enum Outcome {
    case read
    case archived
    case stopped
    case failed(String)
  }

  /// Reads `path` to its end (or until interrupted), discarding the bytes.
  private static func read(_ path: String, buffer: UnsafeMutableRawBufferPointer, progress: WarmProgress) -> Outcome {
    do throws(SystemCallError) {
      let file = try FileSystem.open(path, .readOnly)
      defer { try? file.close() }
      var offset = 0
      while true {
        if warmInterrupted.load(ordering: .relaxed) { return .stopped }
        let count = try file.read(into: buffer, at: offset)
        progress.read(bytes: count)
        if count < buffer.count { return .read }
        offset += count
      }
    } catch  where error.errno.rawValue == EREMOTE {
      // Archived since the walk looked (or its restored copy expired).
      return .archived
    } catch {
      return .failed("\(path): \(error.reason)")
    }
  }

  private func summarize(
    _ plan: WarmPlan, progress: WarmProgress, outcomes: WarmOutcomes, interrupted: Bool
  ) throws {
    let done = outcomes.snapshot()
    let seconds = progress.elapsed
    let bytes = progress.bytesRead
    var line =
      "warmed \(done.read) of \(plan.files.count) file\(plan.files.count == 1 ? "" : "s"), \(humanBytes(bytes)) "
      + "in \(humanDuration(Int(seconds.rounded()))) (\(WarmProgress.rate(bytes: bytes, seconds: seconds)))"
    if let requests = progress.requestsMade() { line += ", \(requests) request\(requests == 1 ? "" : "s") made" }
    print(line)
    let archived = plan.archived + done.archived
    if !archived.isEmpty {
      print(
        "\(archived.count) archived file\(archived.count == 1 ? "" : "s") skipped: bring "
          + "\(archived.count == 1 ? "it" : "them") back with `bklogfs restore PATH...`, then warm again")
      for path in archived.sorted().prefix(5) { print("  archived: \(path)") }
      if archived.count > 5 { print("  and \(archived.count - 5) more") }
    }
    let dropped = progress.blocksNotKept()
    if dropped > 0 {
      print(
        "\(dropped) block\(dropped == 1 ? " was" : "s were") fetched but not kept in the disk cache (its writer "
          + "fell behind): run the same command again to fetch \(dropped == 1 ? "it" : "them")")
    }
    let failed = plan.failures + done.failures
    print("failed: \(failed.count)")
    for failure in failed.sorted().prefix(10) { printError("bklogfs warm: failed: \(failure)") }
    if failed.count > 10 { printError("bklogfs warm: and \(failed.count - 10) more failures") }
    if interrupted {
      printError(
        "bklogfs warm: interrupted; what was read is cached: run the same command again to go on, "
          + "and the files read already are read from the disk cache")
      throw ExitCode(130)
    }
    if !failed.isEmpty { throw ExitCode(1) }
  }
}

/// What `bklogfs warm` found under its paths, before it reads anything.
struct WarmPlan {
  struct File {
    var path: String
    var size: Int
    /// Its mount, an index into `roots`.
    var mount: Int
  }

  /// The roots of the mounts the paths are in, and their counters when the walk met them.
  var roots: [String] = []
  var statistics: [MountStatistics] = []
  var files: [File] = []
  /// Files a mount says cannot be read now: archived, not restored.
  var archived: [String] = []
  /// Files that could not be looked at, with why.
  var failures: [String] = []
  var bytes = 0
  private var seen: Set<FileID> = []

  private struct FileID: Hashable {
    var device: DeviceID
    var inode: Inode
  }

  /// A block's file in the disk cache holds, besides the block's data, a header of 60 bytes and
  /// the block's identity (store, key and ETag): about this much in all, for keys of Buildkite's
  /// layout.
  static let blockOverhead = 320

  static func find(_ paths: [String]) throws -> WarmPlan {
    var plan = WarmPlan()
    try MountWalk.walk(paths) { root in
      let text: String
      do throws(FuseError) {
        text = try readStatistics(mountpoint: root)
      } catch {
        throw MountFailure(error.description)
      }
      guard let statistics = try? MountStatistics(json: text) else {
        throw MountFailure("\(root) answered counters this bklogfs does not read: remount it with this bklogfs")
      }
      plan.roots.append(root)
      plan.statistics.append(statistics)
    } file: { path, status, root in
      guard plan.seen.insert(FileID(device: status.deviceID, inode: status.inode)).inserted else { return }
      do throws(SystemCallError) {
        try FileSystem.checkReadable(path)
      } catch  where error.errno == .permissionDenied {
        plan.archived.append(path)
        return
      } catch {
        plan.failures.append("\(path): \(error.reason)")
        return
      }
      let size = Int(status.size)
      plan.files.append(File(path: path, size: size, mount: plan.roots.firstIndex(of: root)!))
      plan.bytes += size
    }
    return plan
  }

  /// What the files of mount `index` would take in its disk cache, by its block size.
  func cacheBytes(mount index: Int) -> Int {
    let blockSize = max(1, statistics[index].cache.blockSize ?? 1 << 20)
    return files.filter { $0.mount == index }.reduce(0) { total, file in
      total + file.size + (file.size + blockSize - 1) / blockSize * Self.blockOverhead
    }
  }

  /// Why warming the files of mount `index` would not leave them all in its disk cache, or nil.
  func fitProblem(mount index: Int) -> String? {
    let root = roots[index]
    guard let capacity = statistics[index].cache.diskMaxBytes else {
      return "the mount on \(root) does not say how big its disk cache is (an older bklogfs serves it): remount it"
    }
    guard capacity > 0 else {
      return "the mount on \(root) keeps no disk cache (it was mounted with --cache-size 0, or reads a local "
        + "directory), so warming would keep nothing: remount it with --cache-size SIZE"
    }
    let needed = cacheBytes(mount: index)
    guard needed > capacity else { return nil }
    return "the files to warm under \(root) take about \(humanBytes(needed)) in the disk cache, more than the "
      + "\(humanBytes(capacity)) it may hold (--cache-size), so the first would be evicted before the last were "
      + "read: warm a smaller path, or remount with a bigger --cache-size"
  }
}

/// The outcomes of the reads, from every reader thread.
final class WarmOutcomes: Sendable {
  struct Snapshot {
    var read = 0
    var archived: [String] = []
    var failures: [String] = []
  }

  private let state = Mutex(Snapshot())

  func record(_ outcome: WarmCommand.Outcome, of path: String) {
    state.withLock { state in
      switch outcome {
      case .read: state.read += 1
      case .archived: state.archived.append(path)
      case .failed(let message): state.failures.append(message)
      case .stopped: break
      }
    }
  }

  func snapshot() -> Snapshot { state.withLock { $0 } }
}

/// Progress on standard error: files and bytes done of the total, the rate, the time left, the
/// requests the mounts made meanwhile (their counters, which count other readers' too), and for a
/// mount of Buildkite's names its API's rate-limit budget.
final class WarmProgress: Sendable {
  private let roots: [String]
  private let baseline: [MountStatistics]
  private let totalFiles: Int
  private let totalBytes: Int
  private let line: ProgressLine
  private let clock = SystemClock()
  private let started: Double
  private let files = Atomic<Int>(0)
  private let bytes = Atomic<Int>(0)

  init(plan: WarmPlan, interval: Double) {
    roots = plan.roots
    baseline = plan.statistics
    totalFiles = plan.files.count
    totalBytes = plan.bytes
    line = ProgressLine(plainInterval: interval)
    started = clock.now()
  }

  var elapsed: Double { clock.now() - started }
  var bytesRead: Int { bytes.load(ordering: .relaxed) }

  func read(bytes count: Int) {
    bytes.add(count, ordering: .relaxed)
    show()
  }

  func fileDone() {
    let done = files.add(1, ordering: .relaxed).newValue
    show(force: done == totalFiles)
  }

  private func show(force: Bool = false) {
    line.update(force: force) {
      let done = files.load(ordering: .relaxed)
      let read = bytes.load(ordering: .relaxed)
      let seconds = elapsed
      // A log of Buildkite's storage shows size 0 until it is opened: the total grows with it.
      let total = max(totalBytes, read)
      var text =
        (line.terminal ? ProgressLine.bar(read, of: total, width: 12) + " " : "bklogfs warm: ")
        + "\(done)/\(totalFiles) files, \(humanBytes(read))/\(humanBytes(total)), "
        + Self.rate(bytes: read, seconds: seconds)
      if read > 0, seconds > 0 {
        text += ", ETA " + humanDuration(Int((Double(total - read) * seconds / Double(read)).rounded(.up)))
      }
      let counters = current()
      if let requests = requestsMade(counters) { text += ", \(requests) requests" }
      // A mount of Buildkite's names: what its API still allows in this minute.
      if let budget = counters.lazy.compactMap({ $0?.apiBudget }).first {
        text += ", " + apiBudgetText(remaining: budget.remaining, limit: budget.limit)
      }
      return text
    }
  }

  static func rate(bytes: Int, seconds: Double) -> String {
    seconds > 0 ? humanBytes(Int(Double(bytes) / seconds)) + "/s" : "-"
  }

  /// The counters of each mount now, where it still answers.
  private func current() -> [MountStatistics?] {
    roots.map { root in (try? readStatistics(mountpoint: root)).flatMap { try? MountStatistics(json: $0) } }
  }

  /// Requests (list, head, get) the mounts made since the walk, by their counters `now` (by
  /// default read now).
  func requestsMade(_ now: [MountStatistics?]? = nil) -> Int? {
    var total = 0
    for (now, before) in zip(now ?? current(), baseline) {
      guard let now else { return nil }
      total += Self.requests(now) - Self.requests(before)
    }
    return total
  }

  /// Blocks the mounts' disk cache writers left out since the walk, their queues being full.
  func blocksNotKept() -> Int {
    zip(current(), baseline).reduce(0) { total, pair in
      total + (pair.0.map { $0.cache.diskQueueDropped - pair.1.cache.diskQueueDropped } ?? 0)
    }
  }

  /// Waits (at most a minute) until the mounts' disk cache writers have written out what they were
  /// given, so that the files are on disk when warm returns, whatever becomes of the mount.
  func waitForDiskWrites() {
    let deadline = clock.now() + 60
    while clock.now() < deadline && !warmInterrupted.load(ordering: .relaxed) {
      guard current().contains(where: { ($0?.cache.diskQueueBytes ?? 0) > 0 }) else { return }
      line.update { "bklogfs warm: waiting for the disk cache to write what was read" }
      usleep(100_000)
    }
  }

  func finish() { line.finish() }

  private static func requests(_ statistics: MountStatistics) -> Int {
    statistics.requests.list + statistics.requests.head + statistics.requests.get
  }
}
