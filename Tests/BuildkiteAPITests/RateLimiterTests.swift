import BuildkiteAPI
import Synchronization
import SystemBase
import TestSupport
import Testing

@Suite struct RateLimitStateTests {
  @Test func probesOneAtATimeUntilTheBudgetIsKnown() {
    var state = RateLimitState(reserve: 2, probePollInterval: 0.05)
    #expect(state.admit(now: 0) == .proceed)
    #expect(state.admit(now: 0) == .waitUntil(0.05))
    state.complete(RateLimitHeaders(remaining: 10, limit: 50, reset: 30), now: 0.1)
    #expect(state.remaining == 10)
    #expect(state.resetAt == 30.1)
    // 10 left, 2 kept back: 8 more go.
    for _ in 0..<8 { #expect(state.admit(now: 0.2) == .proceed) }
    #expect(state.inFlight == 8)
    #expect(state.admit(now: 0.2) == .waitUntil(30.1))
  }

  @Test func outOfOrderAnswersKeepTheLowestEstimate() {
    var state = RateLimitState(reserve: 1)
    #expect(state.admit(now: 0) == .proceed)
    state.complete(RateLimitHeaders(remaining: 20, limit: 50, reset: 40), now: 0)
    for _ in 0..<3 { #expect(state.admit(now: 1) == .proceed) }
    #expect(state.remaining == 17)
    // Another client of the same user spent some: the server's count is lower than ours.
    state.complete(RateLimitHeaders(remaining: 12, limit: 50, reset: 39), now: 1)
    #expect(state.remaining == 10)  // 12 less the 2 still in flight
    // A late answer with a higher count does not raise it.
    state.complete(RateLimitHeaders(remaining: 19, limit: 50, reset: 39), now: 1.2)
    #expect(state.remaining == 10)
    #expect(state.resetAt == 40.2)  // the later reset: waiting longer is the safe side
    state.complete(RateLimitHeaders(remaining: 18, limit: 50, reset: 38), now: 2)
    #expect(state.inFlight == 0)
  }

  @Test func aNewWindowAfterTheResetStartsWithAProbe() {
    var state = RateLimitState(reserve: 0)
    #expect(state.admit(now: 0) == .proceed)
    state.complete(RateLimitHeaders(remaining: 1, limit: 5, reset: 10), now: 0)
    #expect(state.admit(now: 1) == .proceed)
    #expect(state.admit(now: 1) == .waitUntil(10))
    state.complete(RateLimitHeaders(remaining: 0, limit: 5, reset: 9), now: 1)
    #expect(state.admit(now: 10) == .proceed)  // the probe
    #expect(state.remaining == nil)
    #expect(state.admit(now: 10) == .waitUntil(10 + state.probePollInterval))
    state.complete(RateLimitHeaders(remaining: 4, limit: 5, reset: 60), now: 10.1)
    #expect(state.remaining == 4)
    #expect(state.admit(now: 10.2) == .proceed)
  }

  @Test func aThrottledAnswerEmptiesTheBudgetUntilItsReset() {
    var state = RateLimitState(reserve: 2)
    #expect(state.admit(now: 0) == .proceed)
    state.complete(RateLimitHeaders(remaining: 100, limit: 200, reset: 50), now: 0)
    #expect(state.admit(now: 1) == .proceed)
    state.complete(RateLimitHeaders(remaining: 0, limit: 200, reset: 7), throttled: true, now: 1)
    #expect(state.remaining == 0)
    #expect(state.admit(now: 2) == .waitUntil(8))  // the 429's own reset, not the earlier answer's
    #expect(state.admit(now: 8) == .proceed)  // a probe of the new window
    // Retry-After alone works too, and with no time at all a second is assumed.
    var other = RateLimitState()
    #expect(other.admit(now: 0) == .proceed)
    other.complete(RateLimitHeaders(), throttled: true, now: 0)
    #expect(other.admit(now: 0.5) == .waitUntil(1))
    #expect(other.admit(now: 1) == .proceed)
  }

  @Test func answersWithoutHeadersNeitherBlockNorLoseTrack() {
    var state = RateLimitState(reserve: 1)
    #expect(state.admit(now: 0) == .proceed)
    state.complete(RateLimitHeaders(), now: 0)  // a broken connection
    #expect(state.inFlight == 0)
    #expect(state.admit(now: 0) == .proceed)  // still probing
    state.complete(RateLimitHeaders(remaining: 2, limit: 2), now: 0)  // no reset given
    #expect(state.admit(now: 0) == .proceed)
    #expect(state.admit(now: 0) == .waitUntil(1))  // a guessed second, then a probe
    #expect(state.admit(now: 1) == .waitUntil(1 + state.probePollInterval))  // one still in flight
    state.complete(RateLimitHeaders(), now: 1)
    #expect(state.admit(now: 1) == .proceed)
  }
}

@Suite struct RateLimiterTests {
  @Test func blocksOnTheClockUntilTheReset() throws {
    let clock = ManualClock()
    let limiter = RateLimiter(reserve: 1, maxWait: 90, clock: clock)
    #expect(try limiter.acquire() == false)
    limiter.complete(RateLimitHeaders(remaining: 2, limit: 50, reset: 42))
    #expect(try limiter.acquire() == false)
    limiter.complete(RateLimitHeaders(remaining: 1, limit: 50, reset: 42))
    let before = clock.now()
    #expect(try limiter.acquire() == true)  // waited for the reset, then probed
    #expect(clock.now() - before == 42)
    #expect(clock.sleeps == [42])
  }

  @Test func aWaitLongerThanAllowedThrows() {
    let clock = ManualClock()
    let limiter = RateLimiter(reserve: 0, maxWait: 30, clock: clock)
    #expect(throws: Never.self) { try limiter.acquire() }
    limiter.complete(RateLimitHeaders(remaining: 0, limit: 50, reset: 3600), throttled: true)
    #expect(throws: RateLimitWaitTooLong.self) { try limiter.acquire() }
    #expect(clock.sleeps.isEmpty)
    #expect(limiter.snapshot.inFlight == 0)
  }
}
