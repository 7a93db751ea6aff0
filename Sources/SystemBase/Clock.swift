import Glibc

/// Monotonic time and waiting, for deadlines, TTLs, backoff and rate limits: wall-clock changes must
/// not move them. Injected wherever time decides behaviour, so tests run on a manual clock instead
/// of sleeping.
public protocol MonotonicClock: Sendable {
  /// Seconds on a monotonic clock (any origin; only differences mean anything).
  func now() -> Double
  /// Blocks the calling thread (a plain thread, never one of Swift's cooperative pool) for `seconds`.
  func sleep(seconds: Double)
  /// Seconds since the Unix epoch on the wall clock: only for times kept across runs or compared
  /// with files' times, never for durations.
  func secondsSinceEpoch() -> Double
}

extension MonotonicClock {
  /// The system's wall clock (`clock_gettime(CLOCK_REALTIME)`), for clocks that only fake the
  /// monotonic one.
  public func secondsSinceEpoch() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
  }
}

/// The process's clock: `clock_gettime(CLOCK_MONOTONIC)` and `nanosleep`, resumed after a signal.
public struct SystemClock: MonotonicClock {
  public init() {}

  public func now() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
  }

  public func sleep(seconds: Double) {
    guard seconds > 0 else { return }
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
  }
}
