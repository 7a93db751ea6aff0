/// A failed Buildkite API call, after any retries. The filesystem maps `kind` to an errno in one
/// place; `message` is one plain sentence for the log and never holds the token.
public struct BuildkiteError: Error, Sendable, CustomStringConvertible {
  public enum Kind: Sendable, Hashable {
    /// HTTP 401: the token was refused (unknown, revoked or expired).
    case unauthorized
    /// HTTP 403: the token lacks a scope; the scope's name when known (from the answer, or else the
    /// one the endpoint needs).
    case missingScope(String?)
    /// HTTP 404: no such organization, pipeline, build, job or log (or one the token cannot see).
    case notFound
    /// HTTP 429 kept coming, or the rate-limit window resets later than the caller may wait.
    case rateLimited
    /// HTTP 400 (and other 4xx): the API refused the request, such as a builds listing too deep
    /// without filters; also a configuration this client cannot use.
    case badRequest
    /// HTTP 5xx after every retry.
    case server
    /// The API could not be reached (connection refused, name not resolved, TLS failure, a broken
    /// transfer) after every retry.
    case unreachable
    /// A request ran past its timeout after every retry.
    case timedOut
    /// An answer this client cannot use (malformed JSON, a wrong range, one too large).
    case invalidResponse
  }

  public var kind: Kind
  public var message: String
  /// An `.invalidResponse` because the answer was longer than the client takes
  /// (`BuildkiteConfiguration.maxAnswerBytes`), such as a page of builds with thousands of jobs: asking for
  /// less may work.
  public var isAnswerTooLarge = false

  public init(_ kind: Kind, _ message: String) {
    self.kind = kind
    self.message = message
  }

  public var description: String { message }
}
