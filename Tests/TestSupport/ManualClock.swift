import Synchronization
public import SystemBase

/// A clock that only moves when a test advances it or something sleeps on it; it records every
/// sleep, so backoff, budgets and rate limits are tested without waiting.
public final class ManualClock: MonotonicClock {
  private let state = Mutex<(now: Double, sleeps: [Double])>((1000, []))

  public init() {}

  public func now() -> Double { state.withLock { $0.now } }

  public func sleep(seconds: Double) {
    state.withLock {
      $0.now += max(0, seconds)
      $0.sleeps.append(seconds)
    }
  }

  public func advance(_ seconds: Double) { state.withLock { $0.now += seconds } }

  /// Every sleep so far, in order.
  public var sleeps: [Double] { state.withLock { $0.sleeps } }
}
