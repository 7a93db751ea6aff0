import Dispatch
import Glibc
import Synchronization
import SystemBase

/// A fixed set of plain threads running submitted jobs in order. Fetches block on the network, so
/// they run here rather than on Swift's cooperative pool or Dispatch's, which would grow without bound.
/// The threads start with the first job, so a filesystem that never reads ahead starts none.
final class WorkerPool: Sendable {
  private struct Queue {
    var jobs: [@Sendable () -> Void] = []
    var head = 0
    var stopped = false
    var started = false
  }

  private let queue = Mutex(Queue())
  private let available = DispatchSemaphore(value: 0)
  /// Jobs queued or started on threads of their own (`spawn`), and not yet ended.
  private let unfinished = DispatchGroup()
  let threadCount: Int

  init(threads: Int) {
    threadCount = max(1, threads)
  }

  func submit(_ job: @escaping @Sendable () -> Void) {
    let (queued, start) = queue.withLock { queue -> (Bool, Bool) in
      // After shutdown nothing new runs: the filesystem is gone.
      guard !queue.stopped else { return (false, false) }
      queue.jobs.append(job)
      defer { queue.started = true }
      return (true, !queue.started)
    }
    guard queued else { return }
    unfinished.enter()
    if start {
      for _ in 0..<threadCount { startDetachedThread { [self] in self.work() } }
    }
    available.signal()
  }

  /// Runs `job` now on a thread of its own, not behind the queue: for a fetch a reader waits on.
  func spawn(_ job: @escaping @Sendable () -> Void) {
    unfinished.enter()
    startDetachedThread { [self] in
      job()
      unfinished.leave()
    }
  }

  /// Waits at most `seconds` for every job queued or spawned so far to end; whether they all did.
  @discardableResult
  func waitForJobs(seconds: Double) -> Bool {
    unfinished.wait(timeout: .now() + seconds) == .success
  }

  /// Lets the threads finish the jobs already queued, then end.
  func shutdown() {
    queue.withLock { $0.stopped = true }
    for _ in 0..<threadCount { available.signal() }
  }

  private func work() {
    while true {
      available.wait()
      let job: (@Sendable () -> Void)? = queue.withLock { queue in
        guard queue.head < queue.jobs.count else { return nil }
        let job = queue.jobs[queue.head]
        queue.head += 1
        if queue.head > 64 && queue.head * 2 > queue.jobs.count {
          queue.jobs.removeFirst(queue.head)
          queue.head = 0
        }
        return job
      }
      guard let job else {
        if queue.withLock({ $0.stopped }) { return }
        continue
      }
      job()
      unfinished.leave()
    }
  }
}
