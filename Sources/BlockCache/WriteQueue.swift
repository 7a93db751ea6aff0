import Dispatch
import Logging
import Synchronization
import SystemBase

/// Blocks (or other objects, named by `Key`) waiting to be written somewhere slower than memory
/// (the disk cache, the shared cache's bucket), bounded by bytes and written out in order by
/// threads of their own, so that no reader waits for the write.
///
/// - A block that would overfill the queue is not queued (`dropped`): the destination takes what it
///   can absorb. With `maxQueuedBytes` 0, or once closed, `put` writes at once on the caller's thread.
/// - A block stays queued, and is served by `get`, until its write returns, so it is never fetched
///   again while it waits, nor queued twice.
/// - `close` writes out what is still queued, on the calling thread as well as the writers', within
///   a deadline.
final class WriteQueue<Key: Hashable & Sendable>: Sendable {
  let maxQueuedBytes: Int
  private let write: @Sendable (Key, [UInt8]) -> Void
  private let clock: any MonotonicClock
  private let logger: Logger
  /// Names the destination in the warning of a `close` that ran out of time.
  private let what: String

  private struct State: Sendable {
    var order: [Key] = []
    var head = 0
    var queued: [Key: [UInt8]] = [:]
    var bytes = 0
    var closed = false
    var writersRunning = 0
    var statistics = DiskCacheWriterStatistics()
  }

  private let state = Mutex(State())
  /// Signalled once for each block queued, and once per writer at close.
  private let work = DispatchSemaphore(value: 0)
  /// Left by each writer thread when it ends.
  private let writersDone = DispatchGroup()

  /// - Parameters:
  ///   - writers: the threads that write the queue out (0: only `close` does, for tests).
  ///   - onlyWhenIdle: whether they run at the lowest priority (`SCHED_IDLE`), when a core is free.
  init(
    maxQueuedBytes: Int, writers: Int, onlyWhenIdle: Bool, clock: any MonotonicClock, logger: Logger, what: String,
    write: @escaping @Sendable (Key, [UInt8]) -> Void
  ) {
    self.maxQueuedBytes = max(0, maxQueuedBytes)
    self.write = write
    self.clock = clock
    self.logger = logger
    self.what = what
    guard self.maxQueuedBytes > 0 else { return }
    for _ in 0..<max(0, writers) {
      state.withLock { $0.writersRunning += 1 }
      writersDone.enter()
      startDetachedThread { [self] in
        if onlyWhenIdle { runThisThreadOnlyWhenIdle() }
        writeQueue()
        writersDone.leave()
      }
    }
  }

  /// The block's bytes if it waits to be written.
  func get(_ key: Key) -> [UInt8]? {
    state.withLock { $0.queued[key] }
  }

  /// Queues a block (or, with no queue or once closed, writes it now).
  func put(_ key: Key, _ bytes: [UInt8]) {
    let outcome: PutOutcome = state.withLock { state in
      if maxQueuedBytes == 0 || state.closed { return .now }
      if state.queued[key] != nil { return .skipped }
      guard state.bytes + bytes.count <= maxQueuedBytes else {
        state.statistics.dropped += 1
        return .skipped
      }
      state.queued[key] = bytes
      state.order.append(key)
      state.bytes += bytes.count
      state.statistics.queued += 1
      state.statistics.maxBytes = max(state.statistics.maxBytes, state.bytes)
      return .queued
    }
    switch outcome {
    case .queued: work.signal()
    case .skipped: break
    case .now: write(key, bytes)
    }
  }

  /// Writes out everything queued, then stops the writers; later `put`s write at once. Gives up
  /// after `seconds`, leaving the rest unwritten.
  func close(seconds: Double) {
    let (wasOpen, writers) = state.withLock { state -> (Bool, Int) in
      defer { state.closed = true }
      return (!state.closed, state.writersRunning)
    }
    guard wasOpen, maxQueuedBytes > 0 else { return }
    for _ in 0..<writers { work.signal() }
    // This thread has the caller's priority: it drains the queue alongside the writers.
    let deadline = clock.now() + seconds
    while clock.now() < deadline, writeNext() {}
    if writersDone.wait(timeout: .now() + max(0, deadline - clock.now())) == .timedOut {
      logger.warning("\(what) did not finish within \(Int(seconds)) s")
    }
  }

  var statistics: DiskCacheWriterStatistics {
    state.withLock { state in
      var statistics = state.statistics
      statistics.bytes = state.bytes
      statistics.blocks = state.queued.count
      return statistics
    }
  }

  private func writeQueue() {
    while true {
      if writeNext() { continue }
      if state.withLock({ $0.closed }) { return }
      work.wait()
    }
  }

  /// Writes the oldest queued block not being written; false when there is none. The block stays
  /// queued (and served by `get`) until its write returns.
  private func writeNext() -> Bool {
    let next: (Key, [UInt8])? = state.withLock { state in
      while state.head < state.order.count {
        let key = state.order[state.head]
        state.head += 1
        if state.head > 256 && state.head * 2 > state.order.count {
          state.order.removeFirst(state.head)
          state.head = 0
        }
        // Another thread (a writer, or close) may have taken it already.
        if let bytes = state.queued[key] { return (key, bytes) }
      }
      return nil
    }
    guard let (key, bytes) = next else { return false }
    write(key, bytes)
    state.withLock { state in
      guard let removed = state.queued.removeValue(forKey: key) else { return }
      state.bytes -= removed.count
      state.statistics.written += 1
    }
    return true
  }
}

/// What `WriteQueue.put` did with a block.
private enum PutOutcome { case queued, skipped, now }
