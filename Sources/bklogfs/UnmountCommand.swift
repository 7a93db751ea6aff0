import ArgumentParser
import Dispatch
import FuseAdapter
import Glibc
import LogFS
import Synchronization
import SystemBase

struct UnmountCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "unmount", abstract: "Unmounts a bklogfs mount (as fusermount3 -u does).")

  @Argument(help: "The directory a bklogfs filesystem is mounted on.", completion: .directory)
  var mountpoint: String

  @Flag(help: "Detach the mount even while files on it are open.")
  var lazy = false

  func run() throws {
    // Asked before the unmount: the daemon goes on after it, writing out its disk cache's queue.
    let daemon = lazy ? nil : daemonProcessID(mountpoint)
    let arguments = ["fusermount3", lazy ? "-uz" : "-u", mountpoint]
    var child: pid_t = 0
    let spawned = withCStrings(arguments) { argv in posix_spawnp(&child, "fusermount3", nil, nil, argv, environ) }
    guard spawned == 0 else {
      throw MountFailure(
        "cannot run fusermount3 (\(errorText(spawned))); is the fuse3 package installed?")
    }
    var status: Int32 = 0
    while waitpid(child, &status, 0) < 0 && errno == EINTR {}
    // fusermount3 has already said why on standard error.
    if status != 0 { throw ExitCode.failure }
    if let daemon { waitForExit(daemon, seconds: 60) }
  }
}

/// The process serving a bklogfs mount, from its counters; nil if the mount does not answer within
/// two seconds (a hung daemon must not hang its unmount) or is not bklogfs.
private func daemonProcessID(_ mountpoint: String) -> pid_t? {
  let answered = DispatchSemaphore(value: 0)
  let statistics = Mutex<String?>(nil)
  DispatchQueue.global().async {
    let json = try? readStatistics(mountpoint: mountpoint)
    statistics.withLock { $0 = json }
    answered.signal()
  }
  guard answered.wait(timeout: .now() + 2) == .success, let json = statistics.withLock({ $0 }),
    let counters = try? MountStatistics(json: json)
  else { return nil }
  return counters.pid
}

/// Waits until `pid` has exited (gone, or a zombie nobody has reaped yet), at most `seconds`, so a
/// mount started next over the same cache directory finds every block written.
private func waitForExit(_ pid: pid_t, seconds: Double) {
  let deadline = DispatchTime.now() + seconds
  while DispatchTime.now() < deadline {
    guard let state = processState(pid), state != UInt8(ascii: "Z") else { return }
    usleep(20_000)
  }
  let message = Array("bklogfs: unmounted; its daemon (pid \(pid)) is still writing out its disk cache\n".utf8)
  _ = message.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

/// The state letter in /proc/PID/stat (after the parenthesised name), or nil if there is no such process.
private func processState(_ pid: pid_t) -> UInt8? {
  let descriptor = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
  guard descriptor >= 0 else { return nil }
  defer { close(descriptor) }
  var buffer = [UInt8](repeating: 0, count: 512)
  let count = read(descriptor, &buffer, buffer.count)
  guard count > 0, let nameEnd = buffer[..<count].lastIndex(of: UInt8(ascii: ")")), nameEnd + 2 < count else {
    return nil
  }
  return buffer[nameEnd + 2]
}

struct StatsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "stats",
    abstract: "Prints a mount's counters: requests by kind, bytes fetched, cache hits and misses, retries.",
    discussion: """
      A table for people; --json gives one line of JSON for programs, --prometheus the text a \
      Prometheus scrape reads (doc/CONFIGURATION.md).
      """)

  @Argument(help: "The directory a bklogfs filesystem is mounted on.", completion: .directory)
  var mountpoint: String

  @Flag(help: "One line of JSON, with every counter, for programs.")
  var json = false

  @Flag(help: "The counters in Prometheus's text format, as bklogfs mount --metrics writes them.")
  var prometheus = false

  func validate() throws {
    if json && prometheus { throw ValidationError("Give --json or --prometheus, not both.") }
  }

  func run() throws {
    let text: String
    do throws(FuseError) {
      text = try readStatistics(mountpoint: mountpoint)
    } catch {
      throw MountFailure(error.description)
    }
    if json {
      print(text)
      return
    }
    guard let statistics = try? MountStatistics(json: text) else {
      throw MountFailure("\(mountpoint) answered counters this bklogfs does not read: use --json")
    }
    if prometheus {
      print(statistics.prometheusText(mountpoint: absolutePath(mountpoint)), terminator: "")
      return
    }
    print(statisticsTable(statistics, mountpoint: absolutePath(mountpoint)), terminator: "")
  }
}

/// The counters as `bklogfs stats` shows them to a person: one topic a line.
func statisticsTable(_ stats: MountStatistics, mountpoint: String) -> String {
  let cache = stats.cache
  let reads = cache.memoryHits + cache.diskHits + cache.sharedHits + cache.misses
  func percent(_ part: Int) -> String { reads == 0 ? "-" : "\(part * 100 / reads)%" }
  var rows: [(String, String)] = [
    ("mount", "\(mountpoint) (daemon pid \(stats.pid))"),
    ("source", stats.source),
    (
      "requests",
      "\(stats.requests.list) list, \(stats.requests.head) head, \(stats.requests.get) get; "
        + "\(stats.retries) retried, \(stats.failures) failed"
    ),
    ("fetched", humanBytes(stats.bytesFetched)),
    (
      "block reads",
      "\(reads): \(percent(cache.memoryHits)) from memory, \(percent(cache.diskHits)) from disk"
        + (cache.sharedHits > 0 ? ", \(percent(cache.sharedHits)) shared" : "")
        + ", \(percent(cache.misses)) fetched; \(cache.prefetchedBlocks) blocks fetched ahead"
    ),
    ("memory cache", humanBytes(cache.memoryBytes)),
    (
      "disk cache",
      "\(humanBytes(cache.diskBytes)) in \(cache.diskBlocks) blocks (\(humanBytes(cache.diskBytesOnDisk)) on disk), "
        + "\(cache.diskEvictions) evicted, \(cache.corruptBlocks) damaged"
    ),
  ]
  if cache.sharedHits + cache.sharedMisses + cache.sharedWrites + cache.sharedFailures > 0 {
    rows.append(
      (
        "shared cache",
        "\(cache.sharedHits) hits, \(cache.sharedMisses) misses, \(cache.sharedWrites) written, "
          + "\(cache.sharedFailures) failed, \(cache.sharedCorruptBlocks) damaged"
      ))
  }
  if let latency = stats.latency {
    let kinds = [("list", latency.list), ("head", latency.head), ("get", latency.get), ("api", latency.api ?? .empty)]
    let shown = kinds.filter { $0.1.count > 0 }.map { "\($0.0) \(latencySummary($0.1))" }
    if !shown.isEmpty { rows.append(("latency", shown.joined(separator: "; "))) }
  }
  rows.append(("names held", "\(stats.cachedNames) (heap \(humanBytes(stats.heapBytes)))"))
  let width = rows.map(\.0.count).max() ?? 0
  return rows.map { $0.0 + String(repeating: " ", count: width - $0.0.count + 2) + $0.1 + "\n" }.joined()
}

/// A histogram for people: its mean, and the bucket bound 95% of requests stayed within.
func latencySummary(_ histogram: LatencyHistogram.Snapshot) -> String {
  func duration(_ seconds: Double) -> String {
    seconds >= 1 ? "\((seconds * 10).rounded() / 10) s" : "\(Int((seconds * 1000).rounded())) ms"
  }
  let mean = histogram.sumSeconds / Double(max(1, histogram.count))
  let p95 = histogram.upperBound(ofFraction: 0.95) ?? 0
  return "\(duration(mean)) mean, 95% ≤ " + (p95.isFinite ? duration(p95) : "> 30 s")
}

/// A byte count for people: `812 B`, `3.2 MiB`.
func humanBytes(_ bytes: Int) -> String {
  var value = Double(bytes)
  for unit in ["B", "KiB", "MiB", "GiB", "TiB"] {
    if value < 1024 || unit == "TiB" {
      return unit == "B" ? "\(bytes) B" : "\((value * 10).rounded() / 10) \(unit)"
    }
    value /= 1024
  }
  return "\(bytes) B"
}
