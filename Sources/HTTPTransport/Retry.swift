// One retry engine for every client over this transport (S3, the Buildkite API) and every request
// kind they make. A client's attempt closure does one request and, when it does not succeed, says
// what its failure means as a `RetryOutcome`; the engine alone decides whether, when and how often to
// try again, counts, logs, and names the call in the final error. What a client knows (which
// statuses are transient, where a region lives, how its rate limiter waits) stays in the client.
//
// The shape follows the AWS SDKs' standard strategy as mountpoint-s3 configures it (attempts counted
// with the first included; full-jitter exponential backoff); as in gcsfuse's wrapper, one function
// judges which transport failures are worth another try. Unlike both, a call may also be bounded in
// total time (the mount check must answer within seconds), and a server's own wait is obeyed rather
// than guessed at.

public import Logging
public import SystemBase

/// How one attempt of a call ended when it did not succeed, and so what the engine does next.
public enum RetryOutcome<Failure: Error>: Error {
  /// Final: no retry helps (a refusal, a missing object, a caller's mistake, a TLS failure).
  case fail(Failure)
  /// Transient: retry after a full-jitter backoff.
  case retry(Failure)
  /// Transient, and the server said how many seconds to wait (`Retry-After`): retry after exactly
  /// that, when it fits the policy's `maxServerWait` and budget; otherwise the call fails now, since
  /// the server will not serve it sooner.
  case retryAfter(Double, Failure)
  /// HTTP 429 where the wait is kept elsewhere: a rate limiter that the next attempt passes through
  /// blocks until the window resets. Retried at once and not counted as an attempt, at most
  /// `RetryPolicy.maxThrottles` times in one call.
  case throttled(Failure)
  /// The request went to the wrong place and the answer named the right one (S3's region): `follow`
  /// switches to it, and the call is retried at once, once, not counted as an attempt.
  case redirect(Failure, follow: @Sendable () -> Void)

  /// `.retryAfter` when the server named a wait, `.retry` otherwise.
  public static func retry(_ failure: Failure, serverWait: Double?) -> Self {
    serverWait.map { .retryAfter($0, failure) } ?? .retry(failure)
  }

  /// The outcome of an attempt whose transfer failed, as `TransportFailure` judges it; `failure` says
  /// it in the client's own error.
  public static func transport(_ error: HTTPError, _ failure: (TransportFailure) -> Failure) -> Self {
    let cause = TransportFailure(error.kind)
    return cause.isTransient ? .retry(failure(cause)) : .fail(failure(cause))
  }
}

/// What a failed transfer (no complete answer) means: the one place `HTTPError` kinds are judged.
public enum TransportFailure: Sendable, Hashable {
  /// The connection was refused or broke, or the name did not resolve: the server may be back soon.
  case unreachable
  /// A connect, stall or total timeout expired.
  case timedOut
  /// The TLS handshake or the certificate failed: that does not heal by trying again.
  case tls
  /// The answer was cut by a handler or ran past its size limit: a garbled answer, worth another try.
  case badAnswer
  /// The request could not be made at all (a bad URL, an unsupported scheme).
  case invalidRequest

  public init(_ kind: HTTPError.Kind) {
    switch kind {
    case .connect, .resolve, .transfer: self = .unreachable
    case .timeout: self = .timedOut
    case .tls: self = .tls
    case .tooLarge, .aborted: self = .badAnswer
    case .invalidRequest: self = .invalidRequest
    }
  }

  /// Whether another attempt may succeed.
  public var isTransient: Bool {
    switch self {
    case .unreachable, .timedOut, .badAnswer: true
    case .tls, .invalidRequest: false
    }
  }
}

/// How hard one call tries: its attempts, backoff, total time, and the timeouts of each attempt.
public struct RetryPolicy: Sendable, Hashable {
  /// Attempts, the first included; throttled and redirected attempts are not counted.
  public var maxAttempts: Int
  /// Backoff before retry n (from 1) is uniform in 0...min(maxDelay, baseDelay * 2^(n-1)) seconds.
  public var baseDelay: Double
  public var maxDelay: Double
  /// Seconds the whole call may take, waits included: a retry whose wait would end past it is not
  /// made. Nil bounds the call by its attempts alone.
  public var budget: Double?
  /// `.throttled` outcomes tolerated in one call.
  public var maxThrottles: Int
  /// The longest server-named wait (`Retry-After`) honoured; a longer one ends the call.
  public var maxServerWait: Double
  /// Timeouts for each attempt's request; nil for the HTTP client's own. The engine does not read
  /// them: the attempt closure passes them to its request.
  public var timeouts: HTTPTimeouts?

  public init(
    maxAttempts: Int, baseDelay: Double, maxDelay: Double, budget: Double? = nil, maxThrottles: Int = 0,
    maxServerWait: Double = 60, timeouts: HTTPTimeouts? = nil
  ) {
    self.maxAttempts = max(1, maxAttempts)
    self.baseDelay = baseDelay
    self.maxDelay = maxDelay
    self.budget = budget
    self.maxThrottles = max(0, maxThrottles)
    self.maxServerWait = maxServerWait
    self.timeouts = timeouts
  }

  /// The largest backoff before retry `retry` (from 1): min(maxDelay, baseDelay * 2^(retry-1)).
  public func backoffCeiling(beforeRetry retry: Int) -> Double {
    max(0, min(maxDelay, baseDelay * Double(1 << min(max(retry, 1) - 1, 30))))
  }
}

/// Runs a call's attempts under a `RetryPolicy`. Generic over the client's error type, so a client
/// throws its own errors with their kinds; the final one reads "<what> failed: <message> after N
/// attempts". Safe from any number of threads; it blocks the calling thread while it waits.
public struct RetryEngine<Failure: Error>: Sendable {
  /// What the engine counts: a retry (after a backoff, a server's wait or a redirect), a throttled
  /// attempt, a call that failed.
  public enum Event: Sendable, Hashable {
    case retry
    case throttled
    case failure
  }

  private let clock: any MonotonicClock
  private let logger: Logger
  private let message: @Sendable (Failure) -> String
  private let rewrite: @Sendable (Failure, String) -> Failure
  private let count: @Sendable (Event) -> Void

  /// - Parameters:
  ///   - message: a failure's message, for the log and the final error.
  ///   - rewrite: the failure again (same kind) with a new message: the final error.
  ///   - count: called once per event, to keep the client's counters.
  public init(
    clock: any MonotonicClock, logger: Logger, message: @escaping @Sendable (Failure) -> String,
    rewrite: @escaping @Sendable (Failure, String) -> Failure, count: @escaping @Sendable (Event) -> Void
  ) {
    self.clock = clock
    self.logger = logger
    self.message = message
    self.rewrite = rewrite
    self.count = count
  }

  /// Runs `attempt` until it returns, or the outcome or the policy says to stop. `what` names the call
  /// in log lines and in the final error ("GET s3://bucket/key bytes 0-9").
  public func run<T>(
    _ what: String, _ policy: RetryPolicy, _ attempt: () throws(RetryOutcome<Failure>) -> T
  ) throws(Failure) -> T {
    let deadline = policy.budget.map { clock.now() + $0 }
    func fits(_ wait: Double) -> Bool { deadline.map { clock.now() + wait < $0 } ?? true }
    var attempts = 0
    var throttles = 0
    var redirected = false
    while true {
      attempts += 1
      let final: Failure
      var why = ""
      do {
        return try attempt()
      } catch {
        switch error {
        case .fail(let failure):
          final = failure
        case .redirect(let failure, let follow):
          guard !redirected, fits(0) else {
            final = failure
            break
          }
          redirected = true
          attempts -= 1
          follow()
          count(.retry)
          continue
        case .throttled(let failure):
          count(.throttled)
          throttles += 1
          attempts -= 1
          if throttles <= policy.maxThrottles && fits(0) {
            logger.notice("\(what): rate limited (HTTP 429); waiting for the reset, then retrying")
            continue
          }
          final = failure
        case .retry(let failure):
          let delay = Double.random(in: 0...policy.backoffCeiling(beforeRetry: attempts))
          if attempts < policy.maxAttempts && fits(delay) {
            wait(delay, what, failure, retry: attempts)
            continue
          }
          final = failure
        case .retryAfter(let seconds, let failure):
          let delay = seconds.isFinite ? max(0, seconds) : .infinity
          if attempts < policy.maxAttempts {
            if delay <= policy.maxServerWait && fits(delay) {
              wait(delay, what, failure, retry: attempts)
              continue
            }
            let asked = delay < 1e9 ? "\(Int(delay.rounded(.up))) s" : "ever"
            why = " (the server asked to wait \(asked), longer than the call may take)"
          }
          final = failure
        }
      }
      count(.failure)
      let suffix = attempts > 1 ? " after \(attempts) attempts" : ""
      throw rewrite(final, "\(what) failed: \(message(final))\(why)\(suffix)")
    }
  }

  private func wait(_ delay: Double, _ what: String, _ failure: Failure, retry: Int) {
    count(.retry)
    logger.debug("\(what): \(message(failure)); retry \(retry) in \(Int(delay * 1000)) ms")
    clock.sleep(seconds: delay)
  }
}

/// The wait a `Retry-After` value names, in seconds: delay-seconds, or an HTTP date counted from
/// `now` (seconds since the epoch; a date already past is no wait). Nil for anything else.
public func parseRetryAfter(_ value: String, now: Int64) -> Double? {
  var text = Substring(value)
  while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
  while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
  // Digits (a fraction tolerated) only: `Double` alone would also take "inf", "nan", "1e9" and "0x1p3".
  if let first = text.first, first.isASCII, first.isNumber,
    text.allSatisfy({ $0 == "." || ($0.isASCII && $0.isNumber) })
  {
    return Double(text)
  }
  return parseHTTPDateSeconds(String(text)).map { Double(max(0, $0 - now)) }
}

extension HTTPResponse {
  /// The wait this answer's `Retry-After` names, in seconds; nil when it has none that parses.
  public var retryAfter: Double? {
    headers["retry-after"].flatMap { parseRetryAfter($0, now: Int64(SystemClock().secondsSinceEpoch())) }
  }
}
