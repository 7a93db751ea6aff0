import Glibc
import Synchronization
public import SystemBase

/// What a response said about the rate limit: `RateLimit-Remaining`, `RateLimit-Limit` and
/// `RateLimit-Reset` (seconds until the window resets). Any may be absent.
public struct RateLimitHeaders: Sendable, Hashable {
  public var remaining: Int?
  public var limit: Int?
  public var reset: Double?

  public init(remaining: Int? = nil, limit: Int? = nil, reset: Double? = nil) {
    self.remaining = remaining
    self.limit = limit
    self.reset = reset
  }

  /// Reads the headers from lower-cased response headers; `Retry-After` (seconds) stands in for a
  /// missing `RateLimit-Reset`. When the answer also carries a per-user budget
  /// (`RateLimit-User-Remaining`, `-Limit`, `-Reset`, as the per-org and per-user limits apply at
  /// once), the budget with fewer requests left is the one that binds, and is the one returned.
  public init(headers: [String: String]) {
    func number(_ name: String) -> Double? {
      guard let text = headers[name]?.split(separator: ",").first else { return nil }
      return Double(text.trimmingCharacters(in: " \t")).flatMap { $0.isFinite && $0 >= 0 ? $0 : nil }
    }
    /// A count, fractions dropped; one larger than any real budget (such as `1e30`) is `maximumCount`.
    func count(_ name: String) -> Int? {
      number(name).map { Int(min($0, Double(Self.maximumCount))) }
    }
    remaining = count("ratelimit-remaining")
    limit = count("ratelimit-limit")
    reset = number("ratelimit-reset") ?? number("retry-after")
    if let userRemaining = count("ratelimit-user-remaining") {
      let userReset = number("ratelimit-user-reset")
      if remaining == nil || userRemaining < remaining!
        || (userRemaining == remaining! && (userReset ?? 0) > (reset ?? 0))
      {
        remaining = userRemaining
        limit = count("ratelimit-user-limit") ?? limit
        reset = userReset ?? reset
      }
    }
  }

  public var isEmpty: Bool { remaining == nil && limit == nil && reset == nil }

  /// The largest count taken from a header: far above any real budget, far below `Int.max`, so that
  /// arithmetic on it cannot overflow.
  public static let maximumCount = 1_000_000_000
}

extension Substring {
  fileprivate func trimmingCharacters(in set: String) -> Substring {
    var result = self
    while let first = result.first, set.contains(first) { result = result.dropFirst() }
    while let last = result.last, set.contains(last) { result = result.dropLast() }
    return result
  }
}

/// The rate-limit budget shared by every request of one client: a pure state machine (no clock, no
/// locks), driven by `RateLimiter`.
///
/// - It knows the window's remaining requests (`RateLimit-Remaining`, lowered by each request it
///   admits since), when the window resets (`RateLimit-Reset` after the answer), and the limit.
/// - `admit` lets a request go while, after it, at least `reserve` requests stay unspent; otherwise the
///   caller waits for the reset.
/// - Until the budget is known (at start, and after each reset) one request at a time goes out as a
///   probe; its answer's headers tell the new budget.
/// - Answers arrive out of order: within one window the lowest `remaining` (less the requests still in
///   flight) wins; a later reset time starts a new window.
/// - A 429 empties the budget until its `RateLimit-Reset` (or `Retry-After`), as the server says it
///   then, whatever reset an earlier answer named.
public struct RateLimitState: Sendable, Hashable {
  public enum Decision: Sendable, Hashable {
    /// Send the request now; report its answer with `complete`.
    case proceed
    /// Ask again at this time (monotonic seconds).
    case waitUntil(Double)
  }

  public let reserve: Int
  /// How long a caller waits for a probe's answer before asking again.
  public let probePollInterval: Double
  /// Requests admitted and not yet completed.
  public private(set) var inFlight = 0
  /// Requests still allowed in this window, as far as is known; nil when unknown.
  public private(set) var remaining: Int?
  /// When the window resets (monotonic seconds); nil when unknown.
  public private(set) var resetAt: Double?
  /// `RateLimit-Limit` as last seen.
  public private(set) var limit: Int?

  public init(reserve: Int = 2, probePollInterval: Double = 0.02) {
    self.reserve = max(0, reserve)
    self.probePollInterval = probePollInterval
  }

  /// Whether a request may go now.
  public mutating func admit(now: Double) -> Decision {
    if let resetAt, now >= resetAt {
      // A new window: its budget is unknown until a probe's answer tells it.
      remaining = nil
      self.resetAt = nil
    }
    guard let remaining else {
      if inFlight == 0 {
        inFlight += 1
        return .proceed
      }
      return .waitUntil(now + probePollInterval)
    }
    if remaining > reserve {
      self.remaining = remaining - 1
      inFlight += 1
      return .proceed
    }
    // Spent: wait for the reset. With no reset time known, guess one second: then a probe asks again.
    if resetAt == nil { resetAt = now + 1 }
    return .waitUntil(resetAt!)
  }

  /// Records the answer to an admitted request (`headers` empty when none came, such as a broken
  /// connection). `throttled` for a 429.
  public mutating func complete(_ headers: RateLimitHeaders, throttled: Bool = false, now: Double) {
    inFlight = max(0, inFlight - 1)
    if let limit = headers.limit { self.limit = limit }
    if throttled {
      // The budget is gone until the reset the server named: its latest word, even when an earlier
      // answer named a later one (a 429 of the per-user budget, say, while the org's window runs
      // on). With no reset named, a second at least, and never sooner than one already known.
      remaining = 0
      let until = now + max(headers.reset ?? 1, probePollInterval)
      resetAt = headers.reset != nil ? until : max(resetAt ?? until, until)
      return
    }
    guard let reported = headers.remaining else {
      if let reset = headers.reset, resetAt == nil { resetAt = now + reset }
      return
    }
    // Requests still in flight may not be counted in `reported` yet.
    let estimate = max(0, reported - inFlight)
    let newResetAt = headers.reset.map { now + $0 }
    let isNewWindow: Bool
    if remaining == nil || resetAt == nil {
      isNewWindow = true
    } else if let newResetAt, let resetAt, newResetAt > resetAt + 1.5 {
      // `RateLimit-Reset` is whole seconds: only a clearly later reset is another window.
      isNewWindow = true
    } else {
      isNewWindow = false
    }
    if isNewWindow {
      remaining = estimate
      resetAt = newResetAt ?? resetAt
    } else {
      remaining = min(remaining ?? estimate, estimate)
      if let newResetAt, let current = resetAt { resetAt = max(current, newResetAt) }
    }
  }

  /// Records that an admitted request was never sent (the caller gave up first).
  public mutating func cancel() {
    inFlight = max(0, inFlight - 1)
    if remaining != nil { remaining! += 1 }
  }
}

/// A rate-limit wait longer than the caller may block.
public struct RateLimitWaitTooLong: Error, Sendable {
  /// Seconds until the window resets.
  public var seconds: Double
}

/// `RateLimitState` behind a lock, blocking callers (plain threads) until their request may go.
public final class RateLimiter: Sendable {
  private let state: Mutex<RateLimitState>
  private let clock: any MonotonicClock
  private let maxWait: Double
  public init(reserve: Int = 2, maxWait: Double = 90, clock: any MonotonicClock = SystemClock()) {
    state = Mutex(RateLimitState(reserve: reserve))
    self.clock = clock
    self.maxWait = maxWait
  }

  /// A copy of the state, for tests and stats.
  public var snapshot: RateLimitState { state.withLock { $0 } }

  /// Blocks until a request may go; returns whether it had to wait. Throws when the window resets
  /// more than `maxWait` seconds after the call began; the request is then not counted as in flight.
  @discardableResult
  public func acquire() throws(RateLimitWaitTooLong) -> Bool {
    var started: Double?
    while true {
      let now = clock.now()
      let decision = state.withLock { $0.admit(now: now) }
      guard case .waitUntil(let until) = decision else { return started != nil }
      let first = started ?? now
      started = first
      if until - first > maxWait { throw RateLimitWaitTooLong(seconds: until - now) }
      clock.sleep(seconds: max(0, until - now))
    }
  }

  /// Reports the answer to a request that `acquire` let go.
  public func complete(_ headers: RateLimitHeaders, throttled: Bool = false) {
    let now = clock.now()
    state.withLock { $0.complete(headers, throttled: throttled, now: now) }
  }
}
