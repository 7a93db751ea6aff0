import Synchronization
public import SystemBase

/// A clock that moves only when told to or when someone sleeps on it, so that tests of deadlines,
/// TTLs and rate limits neither sleep nor race the real clock. Its wall clock moves with it, from
/// 2023-11-14.
public final class FakeClock: MonotonicClock {
  private let state = Mutex<(now: Double, sleeps: [Double])>((1000, []))

  public init() {}

  public func now() -> Double { state.withLock { $0.now } }

  public func sleep(seconds: Double) {
    state.withLock {
      $0.now += max(0, seconds)
      $0.sleeps.append(seconds)
    }
  }

  public func secondsSinceEpoch() -> Double { 1_700_000_000 + now() }

  public func advance(_ seconds: Double) { state.withLock { $0.now += seconds } }
  public var sleeps: [Double] { state.withLock { $0.sleeps } }
}
