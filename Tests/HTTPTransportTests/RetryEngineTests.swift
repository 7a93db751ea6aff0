import HTTPTransport
import Logging
import Synchronization
import SystemBase
import TestSupport
import Testing

struct TestFailure: Error, Equatable {
  var kind: String
  var message: String
}

/// The engine on a manual clock, with the events it counted.
final class Harness: Sendable {
  let clock = FakeClock()
  let events = Mutex<[RetryEngine<TestFailure>.Event]>([])

  var engine: RetryEngine<TestFailure> {
    RetryEngine(
      clock: clock, logger: Logger(label: "test.retry"), message: { $0.message },
      rewrite: { TestFailure(kind: $0.kind, message: $1) },
      count: { event in self.events.withLock { $0.append(event) } })
  }

  var counted: [RetryEngine<TestFailure>.Event] { events.withLock { $0 } }

  /// Runs a call whose attempts end as `outcomes` says, one by one (nil: success), and returns the
  /// attempts made and the error, if any.
  func run(
    _ policy: RetryPolicy, _ outcomes: [RetryOutcome<TestFailure>?], duration: Double = 0
  ) -> (attempts: Int, error: TestFailure?) {
    var made = 0
    do throws(TestFailure) {
      try engine.run("GET thing", policy) { () throws(RetryOutcome<TestFailure>) in
        made += 1
        clock.advance(duration)
        if let outcome = outcomes[min(made, outcomes.count) - 1] { throw outcome }
      }
      return (made, nil)
    } catch {
      return (made, error)
    }
  }
}

private let boom = TestFailure(kind: "server", message: "boom")

@Suite struct RetryEngineTests {
  @Test func theJitterStaysWithinItsBound() {
    let policy = RetryPolicy(maxAttempts: 8, baseDelay: 0.1, maxDelay: 1)
    var largest = [Double](repeating: 0, count: 7)
    for _ in 0..<200 {
      let harness = Harness()
      let result = harness.run(policy, [.retry(boom)])
      #expect(result.attempts == 8)
      #expect(result.error == TestFailure(kind: "server", message: "GET thing failed: boom after 8 attempts"))
      let sleeps = harness.clock.sleeps
      #expect(sleeps.count == 7)
      for (index, sleep) in sleeps.enumerated() {
        let ceiling = min(1, 0.1 * Double(1 << index))
        #expect(sleep >= 0 && sleep <= ceiling, "retry \(index + 1) slept \(sleep), past \(ceiling)")
        largest[index] = max(largest[index], sleep)
      }
    }
    // Full jitter spreads over the whole range: over 200 calls each retry comes near its ceiling.
    for (index, sleep) in largest.enumerated() { #expect(sleep > 0.8 * min(1, 0.1 * Double(1 << index))) }
    #expect(policy.backoffCeiling(beforeRetry: 1) == 0.1)
    #expect(policy.backoffCeiling(beforeRetry: 4) == 0.8)
    #expect(policy.backoffCeiling(beforeRetry: 100) == 1)
  }

  @Test func aServerGivenWaitIsHonoured() {
    let harness = Harness()
    let result = harness.run(RetryPolicy(maxAttempts: 3, baseDelay: 0.1, maxDelay: 1), [.retryAfter(7, boom), nil])
    #expect(result.attempts == 2 && result.error == nil)
    #expect(harness.clock.sleeps == [7])
    #expect(harness.counted == [.retry])

    // No wait named: the backoff.
    let plain = Harness()
    _ = plain.run(RetryPolicy(maxAttempts: 3, baseDelay: 0.1, maxDelay: 1), [.retry(boom, serverWait: nil), nil])
    #expect(plain.clock.sleeps.count == 1 && plain.clock.sleeps[0] <= 0.1)
  }

  @Test func aServerGivenWaitPastTheBudgetOrTheLimitEndsTheCall() {
    let harness = Harness()
    let result = harness.run(
      RetryPolicy(maxAttempts: 5, baseDelay: 0.1, maxDelay: 1, budget: 5), [.retryAfter(7, boom), nil])
    #expect(result.attempts == 1)
    #expect(
      result.error?.message == "GET thing failed: boom (the server asked to wait 7 s, longer than the call may take)")
    #expect(harness.clock.sleeps.isEmpty)
    #expect(harness.counted == [.failure])

    // Within the budget it is waited for; past `maxServerWait` it is not, budget or none.
    let inBudget = Harness()
    #expect(
      inBudget.run(RetryPolicy(maxAttempts: 5, baseDelay: 0.1, maxDelay: 1, budget: 5), [.retryAfter(4, boom), nil])
        .error == nil)
    #expect(inBudget.clock.sleeps == [4])
    let tooLong = Harness()
    let refused = tooLong.run(
      RetryPolicy(maxAttempts: 5, baseDelay: 0.1, maxDelay: 1, maxServerWait: 60), [.retryAfter(3600, boom), nil])
    #expect(refused.attempts == 1 && refused.error?.message.contains("asked to wait 3600 s") == true)
    #expect(tooLong.clock.sleeps.isEmpty)
  }

  @Test func attemptsAreBounded() {
    let harness = Harness()
    let result = harness.run(RetryPolicy(maxAttempts: 3, baseDelay: 0.01, maxDelay: 0.01), [.retry(boom)])
    #expect(result.attempts == 3)
    #expect(result.error == TestFailure(kind: "server", message: "GET thing failed: boom after 3 attempts"))
    #expect(harness.clock.sleeps.count == 2)
    #expect(harness.counted == [.retry, .retry, .failure])

    // Server-named waits count as attempts too.
    let waited = Harness()
    #expect(
      waited.run(RetryPolicy(maxAttempts: 2, baseDelay: 0.01, maxDelay: 0.01), [.retryAfter(1, boom)]).attempts == 2)
    #expect(waited.clock.sleeps == [1])
  }

  @Test func theTotalTimeIsBounded() {
    // Each attempt takes 0.5 s; backoffs are tiny; the budget is 2 s: the fourth attempt ends past
    // it, so no fifth is made, however many attempts the policy allows.
    let harness = Harness()
    let start = harness.clock.now()
    let result = harness.run(
      RetryPolicy(maxAttempts: 100, baseDelay: 0.001, maxDelay: 0.001, budget: 2), [.retry(boom)], duration: 0.5)
    #expect(result.attempts == 4)
    #expect(result.error?.message == "GET thing failed: boom after 4 attempts")
    #expect(harness.clock.now() - start < 2.01)
    #expect(harness.clock.sleeps.count == 3)
  }

  @Test func aFinalFailureStopsAtOnce() {
    let harness = Harness()
    let denied = TestFailure(kind: "denied", message: "no")
    let result = harness.run(RetryPolicy(maxAttempts: 5, baseDelay: 1, maxDelay: 1), [.fail(denied), nil])
    #expect(result.attempts == 1)
    #expect(result.error == TestFailure(kind: "denied", message: "GET thing failed: no"))
    #expect(harness.clock.sleeps.isEmpty)
    #expect(harness.counted == [.failure])

    // After transient failures, the final one names the attempts.
    let later = Harness()
    let after = later.run(RetryPolicy(maxAttempts: 5, baseDelay: 0.01, maxDelay: 0.01), [.retry(boom), .fail(denied)])
    #expect(after.error?.message == "GET thing failed: no after 2 attempts")
  }

  @Test func aRedirectRetriesAtOnceOnceWithoutCounting() {
    let followed = Atomic<Int>(0)
    let redirect = RetryOutcome<TestFailure>.redirect(TestFailure(kind: "moved", message: "elsewhere")) {
      followed.add(1, ordering: .relaxed)
    }
    // One attempt allowed, and still the redirect is followed.
    let harness = Harness()
    let result = harness.run(RetryPolicy(maxAttempts: 1, baseDelay: 1, maxDelay: 1), [redirect, nil])
    #expect(result.attempts == 2 && result.error == nil)
    #expect(followed.load(ordering: .relaxed) == 1)
    #expect(harness.clock.sleeps.isEmpty)
    #expect(harness.counted == [.retry])

    // A second redirect in the same call is final.
    let again = Harness()
    let twice = again.run(RetryPolicy(maxAttempts: 5, baseDelay: 1, maxDelay: 1), [redirect, redirect, nil])
    #expect(twice.attempts == 2)
    #expect(twice.error == TestFailure(kind: "moved", message: "GET thing failed: elsewhere"))
    #expect(followed.load(ordering: .relaxed) == 2)
    #expect(again.counted == [.retry, .failure])
  }

  @Test func throttledAttemptsAreBoundedApartAndNotCounted() {
    let limited = TestFailure(kind: "rateLimited", message: "429")
    let harness = Harness()
    let policy = RetryPolicy(maxAttempts: 1, baseDelay: 1, maxDelay: 1, maxThrottles: 2)
    #expect(harness.run(policy, [.throttled(limited), .throttled(limited), nil]).error == nil)
    #expect(harness.clock.sleeps.isEmpty)
    #expect(harness.counted == [.throttled, .throttled])

    let stubborn = Harness()
    let result = stubborn.run(policy, [.throttled(limited)])
    #expect(result.attempts == 3)
    #expect(result.error == TestFailure(kind: "rateLimited", message: "GET thing failed: 429"))
    #expect(stubborn.counted == [.throttled, .throttled, .throttled, .failure])
  }

  @Test func retryAfterIsSecondsOrAnHTTPDate() {
    let now: Int64 = 1_445_412_480  // Wed, 21 Oct 2015 07:28:00 GMT
    #expect(parseRetryAfter("120", now: now) == 120)
    #expect(parseRetryAfter(" 3\t", now: now) == 3)
    #expect(parseRetryAfter("0", now: now) == 0)
    #expect(parseRetryAfter("1.5", now: now) == 1.5)
    #expect(parseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", now: now) == 30)
    #expect(parseRetryAfter("Wednesday, 21-Oct-15 07:29:00 GMT", now: now) == 60)
    #expect(parseRetryAfter("Wed Oct 21 07:28:05 2015", now: now) == 5)
    // A date already past is no wait.
    #expect(parseRetryAfter("Tue, 20 Oct 2015 07:28:00 GMT", now: now) == 0)
    for garbage in ["", "soon", "-5", "inf", "nan", "1e3", "0x10", "5 s", "Wed, 21 Oct 2015 GMT", "1.2.3"] {
      #expect(parseRetryAfter(garbage, now: now) == nil, "\(garbage)")
    }
    #expect(HTTPResponse(status: 503, headers: ["retry-after": "7"]).retryAfter == 7)
    #expect(HTTPResponse(status: 503, headers: ["retry-after": "later"]).retryAfter == nil)
    #expect(HTTPResponse(status: 503, headers: [:]).retryAfter == nil)
  }

  @Test func transportFailuresAreJudgedInOnePlace() {
    let expected: [(HTTPError.Kind, TransportFailure, Bool)] = [
      (.connect, .unreachable, true), (.resolve, .unreachable, true), (.transfer, .unreachable, true),
      (.timeout, .timedOut, true), (.tooLarge, .badAnswer, true), (.aborted, .badAnswer, true),
      (.tls, .tls, false), (.invalidRequest, .invalidRequest, false),
    ]
    for (kind, failure, transient) in expected {
      #expect(TransportFailure(kind) == failure)
      #expect(failure.isTransient == transient)
      let outcome = RetryOutcome<TestFailure>.transport(HTTPError(kind, "x")) { _ in boom }
      switch outcome {
      case .retry: #expect(transient, "\(kind)")
      case .fail: #expect(!transient, "\(kind)")
      default: Issue.record("\(kind) became \(outcome)")
      }
    }
  }
}
