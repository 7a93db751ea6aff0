/// A failure of an object store call, after any retries. The filesystem maps `kind` to an errno
/// in one place; `message` is one plain sentence for the log and never holds a secret.
public struct ObjectStoreError: Error, Sendable, CustomStringConvertible {
  public enum Kind: Sendable, Hashable {
    /// No such key (S3 `NoSuchKey`, HTTP 404 on an object).
    case notFound
    /// No such bucket.
    case noSuchBucket
    /// The object changed: its ETag no longer matches (HTTP 412).
    case preconditionFailed
    /// Credentials were refused or lack permission (HTTP 403, `InvalidAccessKeyId`, `SignatureDoesNotMatch`).
    case accessDenied
    /// The object is in an archive storage class (GLACIER, DEEP_ARCHIVE, an archive tier of
    /// INTELLIGENT_TIERING) and not restored: it cannot be read until it is (S3 `InvalidObjectState`).
    case archived
    /// The object is encrypted with a key its writer keeps (SSE-C): it can only be read by sending
    /// that key, which this client does not hold.
    case customerKeyRequired
    /// The server could not be reached, or the connection failed, after every retry.
    case unreachable
    /// A call ran past its timeout, after every retry.
    case timedOut
    /// The server answered with something this client cannot use (malformed XML, a wrong range).
    case invalidResponse
    /// The server kept failing (5xx, `SlowDown`) after every retry.
    case serverError
    /// A caller's mistake, such as a range past the end of the object.
    case invalidRequest
  }

  public var kind: Kind
  public var message: String
  /// For `.archived`: the object's storage, as far as the refusal said.
  public var storage: ObjectStorage?

  public init(_ kind: Kind, _ message: String, storage: ObjectStorage? = nil) {
    self.kind = kind
    self.message = message
    self.storage = storage
  }

  public var description: String { message }
}
