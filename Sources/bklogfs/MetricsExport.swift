import ArgumentParser
import Glibc
import LogFS
import Logging
import Synchronization
import SystemBase
import SystemPackage

/// `bklogfs mount --metrics FILE`: the mount's counters for Prometheus, through node_exporter's
/// textfile collector.
struct MetricsOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "Write the mount's counters in Prometheus's text format to this file (for node_exporter's textfile collector), replacing it every --metrics-interval seconds.",
      valueName: "file"))
  var metrics: String?

  @Option(help: ArgumentHelp("Seconds between two writes of the --metrics file.", valueName: "seconds"))
  var metricsInterval: Int = 15

  @Option(
    help: ArgumentHelp(
      "Serve the counters in Prometheus's text format at http://ADDRESS:PORT/metrics, without authentication: give a loopback address (127.0.0.1:PORT) unless the network is trusted.",
      valueName: "address:port"))
  var metricsListen: String?

  func validate() throws {
    if !(1...3600).contains(metricsInterval) {
      throw ValidationError("--metrics-interval takes seconds from 1 to 3600 (it is \(metricsInterval)).")
    }
    if let metricsListen, MetricsListener.parse(metricsListen) == nil {
      throw ValidationError(
        "--metrics-listen takes an IPv4 address and a port, such as 127.0.0.1:9101 (it is \(metricsListen)).")
    }
    guard let metrics else { return }
    let path = absolutePath(metrics)
    if path.hasSuffix("/") || (try? FileSystem.stat(path))?.type == .directory {
      throw ValidationError("--metrics takes a file to write, not a directory (\(metrics)).")
    }
    let directory = parentDirectory(of: path)
    guard (try? FileSystem.stat(directory))?.type == .directory else {
      throw ValidationError(
        "--metrics \(metrics): the directory \(directory) does not exist; create it first (node_exporter reads a directory given by --collector.textfile.directory)."
      )
    }
    guard FileSystem.canWrite(directory) else {
      throw ValidationError("--metrics \(metrics): this user cannot write in \(directory).")
    }
  }
}

/// The directory holding `path` (an absolute path).
private func parentDirectory(of path: String) -> String {
  guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
  return String(path[..<slash])
}

/// Writes the mount's counters to a file every interval from a thread of its own, each time whole
/// (to `FILE.tmp`, then renamed over `FILE`), so a reader never sees half of one: node_exporter's
/// textfile collector reads only `*.prom` files, and so ignores the temporary one. A write that
/// fails is logged once, until one succeeds again, and never stops the mount. `stop()` writes a
/// last snapshot, after which the thread writes no more.
final class MetricsFileWriter: Sendable {
  let path: String
  let interval: Int
  private let render: @Sendable () -> String
  private let logger: Logger
  /// Whether the last snapshot was written (none after it), and whether writes are failing (so
  /// the failure was logged).
  private let state = Mutex<(stopped: Bool, failing: Bool)>((false, false))
  /// What the thread sleeps on between writes, and `stop()` wakes it with.
  private let wake: WakePipe

  init(path: String, interval: Int, logger: Logger, render: @escaping @Sendable () -> String) throws(MountFailure) {
    wake = try WakePipe()
    self.path = path
    self.interval = interval
    self.logger = logger
    self.render = render
  }

  /// Writes a first snapshot now, then one every interval until `stop()`.
  func start() {
    writeSnapshot(last: false)
    startDetachedThread { [self] in
      while !wake.sleep(seconds: interval) { writeSnapshot(last: false) }
    }
  }

  /// Writes the last snapshot and ends the thread.
  func stop() {
    wake.wake()
    writeSnapshot(last: true)
  }

  private func writeSnapshot(last: Bool) {
    state.withLock { state in
      guard !state.stopped else { return }
      state.stopped = last
      do throws(SystemCallError) {
        try writeReplacing(path, Array(render().utf8))
        if state.failing {
          logger.notice("writing the metrics to \(path) works again")
          state.failing = false
        }
      } catch {
        if !state.failing {
          logger.warning("cannot write the metrics to \(path): \(error); trying again every \(interval) s")
          state.failing = true
        }
      }
    }
  }
}

/// Writes `bytes` to `path.tmp` (mode 0644, for a collector running as another user), then renames
/// it over `path`.
private func writeReplacing(_ path: String, _ bytes: [UInt8]) throws(SystemCallError) {
  let temporary = path + ".tmp"
  let file = try FileSystem.open(
    temporary, .writeOnly, options: [.create, .truncate, .noFollow],
    permissions: [.ownerReadWrite, .groupRead, .otherRead])
  do throws(SystemCallError) {
    do throws(SystemCallError) {
      try file.write(bytes, at: 0)
    } catch {
      file.closeIgnoringErrors()
      throw error
    }
    try file.close()
    try FileSystem.rename(temporary, to: path)
  } catch {
    try? FileSystem.unlink(temporary)
    throw error
  }
}
