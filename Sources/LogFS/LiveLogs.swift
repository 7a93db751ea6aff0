import Logging
import ObjectStore
import Synchronization
import SystemBase

/// A log still growing (a running job's), followed while a file of it is open, so that `tail -f`
/// and `less +F` see its new output: its size now and its newest bytes, learned by asking its store
/// for its end (one suffix request) every so often, never for what it already has.
final class LiveLog: Sendable {
  let client: any GrowingObjectClient
  let key: String

  struct State {
    /// The log's size when last asked.
    var size: UInt64
    /// The newest bytes known: `window` is the log's bytes from `windowStart` to `size`.
    var windowStart: UInt64
    var window: [UInt8] = []
    /// How many bytes of its end the next poll asks for: doubled when a poll found the log had
    /// grown by more, so that one request usually brings all that is new.
    var tailCount: Int
    var lastPoll: Double
    var polling = false
    /// Polls in a row that found no new bytes: after a few, the store is asked whether the job finished.
    var unchangedPolls = 0
    var pollsSinceCheck = 0
    /// Set once the job finished and its final end was read: the log no longer grows.
    var finished = false
    /// Open files of it.
    var openCount = 0
  }

  let state: Mutex<State>

  init(client: any GrowingObjectClient, key: String, size: UInt64, now: Double) {
    self.client = client
    self.key = key
    state = Mutex(State(size: size, windowStart: size, tailCount: LiveLogs.firstTail, lastPoll: now))
  }

  var size: UInt64 { state.withLock { $0.size } }
  var isFinished: Bool { state.withLock { $0.finished } }

  /// Bytes `range` of the log if the window holds them all; nil if they are older than it.
  func windowBytes(_ range: Range<UInt64>) -> [UInt8]? {
    state.withLock { state in
      guard range.lowerBound >= state.windowStart else { return nil }
      let end = min(range.upperBound, state.size)
      guard range.lowerBound < end else { return [] }
      let from = Int(range.lowerBound - state.windowStart)
      return Array(state.window[from..<from + Int(end - range.lowerBound)])
    }
  }

  /// What a poll found: the end of the log (`bytes`, its last bytes) and its size; `stopped` when
  /// the store said, before this poll, that it no longer grows.
  func update(bytes: [UInt8], size: UInt64, stopped: Bool, now: Double) -> Bool {
    state.withLock { state in
      state.polling = false
      state.lastPoll = now
      guard size >= state.size else {
        // Shorter than it was: not the same log. The window is dropped; reads ask the store.
        state.size = size
        state.windowStart = size
        state.window = []
        return true
      }
      let growth = size - state.size
      if growth == 0 {
        state.unchangedPolls += 1
      } else if growth <= UInt64(bytes.count) {
        state.window += bytes.suffix(Int(growth))
        state.unchangedPolls = 0
      } else {
        // More new bytes than asked for: what lies between is read from the store if a reader
        // asks for it, and the next poll asks for more.
        state.window = bytes
        state.windowStart = size - UInt64(bytes.count)
        state.tailCount = min(state.tailCount * 2, LiveLogs.largestTail)
        state.unchangedPolls = 0
      }
      state.size = size
      if state.window.count > LiveLogs.windowBytes {
        let drop = state.window.count - LiveLogs.windowBytes / 2
        state.window.removeFirst(drop)
        state.windowStart += UInt64(drop)
      }
      if stopped { state.finished = true }
      return growth > 0 || stopped
    }
  }

  func pollFailed(now: Double) {
    state.withLock { state in
      state.polling = false
      state.lastPoll = now
    }
  }
}

/// The live logs of a mount, by inode: polled only while a file of them is open and read (each
/// `stat` or read at the end asks for a poll), in the background (a reader never waits for one),
/// at most one poll every `interval` seconds across the mount (with N logs followed, each every
/// N × `interval`), so that followers share the API's budget and leave most of it to other readers.
final class LiveLogs: Sendable {
  /// Bytes of its end a log's first poll asks for, and the most any asks for.
  static let firstTail = 64 << 10
  static let largestTail = 8 << 20
  /// The most of a log's newest bytes kept.
  static let windowBytes = 16 << 20
  /// Unchanged polls after which the store is asked whether the job finished, and polls between
  /// two such asks while it keeps growing.
  static let unchangedBeforeCheck = 1
  static let pollsBetweenChecks = 10

  let interval: Double
  private let clock: any MonotonicClock
  private let logger: Logger
  private let logs = Mutex<[UInt64: LiveLog]>([:])
  /// Told the inode of a log whose size changed, or that finished (the FUSE adapter's `fileChanged`).
  private let changed = Mutex<(@Sendable (UInt64) -> Void)?>(nil)
  private let submit: @Sendable (@escaping @Sendable () -> Void) -> Void

  init(
    interval: Double, clock: any MonotonicClock, logger: Logger,
    submit: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void
  ) {
    self.interval = interval
    self.clock = clock
    self.logger = logger
    self.submit = submit
  }

  func onChange(_ body: @escaping @Sendable (UInt64) -> Void) {
    changed.withLock { $0 = body }
  }

  /// The live log of a file being opened, with the size its open found.
  func open(inode: UInt64, client: any GrowingObjectClient, key: String, size: UInt64) -> LiveLog {
    logs.withLock { logs in
      if let log = logs[inode], log.key == key, log.client.identity == client.identity {
        log.state.withLock { state in
          state.openCount += 1
          if size > state.size {
            // The open saw more than the polls did: the window starts again there.
            state.size = size
            state.windowStart = size
            state.window = []
          }
        }
        return log
      }
      let log = LiveLog(client: client, key: key, size: size, now: clock.now())
      log.state.withLock { $0.openCount = 1 }
      logs[inode] = log
      return log
    }
  }

  func close(inode: UInt64, _ log: LiveLog) {
    logs.withLock { logs in
      let left = log.state.withLock { state -> Int in
        state.openCount -= 1
        return state.openCount
      }
      if left <= 0, logs[inode] === log { logs[inode] = nil }
    }
  }

  /// The live log of an inode, if a file of it is open.
  func log(of inode: UInt64) -> LiveLog? {
    logs.withLock { $0[inode] }
  }

  /// Polls the log in the background if it is due: not finished, not being polled, and its share
  /// of the mount's polls has come.
  func pollIfDue(inode: UInt64, _ log: LiveLog) {
    let now = clock.now()
    let followed = logs.withLock { $0.count }
    let due = log.state.withLock { state -> (count: Int, check: Bool)? in
      guard !state.finished, !state.polling, now - state.lastPoll >= interval * Double(max(1, followed)) else {
        return nil
      }
      state.polling = true
      state.pollsSinceCheck += 1
      let check =
        state.unchangedPolls >= Self.unchangedBeforeCheck || state.pollsSinceCheck >= Self.pollsBetweenChecks
      if check { state.pollsSinceCheck = 0 }
      return (state.tailCount, check)
    }
    guard let due else { return }
    submit { [self] in poll(inode: inode, log, count: due.count, check: due.check) }
  }

  private func poll(inode: UInt64, _ log: LiveLog, count: Int, check: Bool) {
    do throws(ObjectStoreError) {
      // Asked first: a log whose job had finished before its end was read is complete.
      let stopped = check ? try log.client.hasStoppedGrowing(key: log.key) : false
      let (bytes, size) = try log.client.tail(key: log.key, count: count)
      if log.update(bytes: bytes, size: size, stopped: stopped, now: clock.now()) {
        changed.withLock { $0 }?(inode)
      }
      if stopped { logger.debug("\(log.client.identity)/\(log.key) finished growing at \(size) bytes") }
    } catch {
      log.pollFailed(now: clock.now())
      logger.notice(
        "following \(log.client.identity)/\(log.key) failed: \(error.message); it is asked again in \(Int(interval)) s")
    }
  }
}
