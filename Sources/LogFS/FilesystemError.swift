import Glibc
public import ObjectStore

/// A failed filesystem operation: the errno the kernel gets, and one sentence for the log.
/// Every object store failure is turned into an errno here and nowhere else.
public struct FilesystemError: Error, Sendable, CustomStringConvertible {
  public var errno: Int32
  public var message: String

  public init(errno: Int32, _ message: String) {
    self.errno = errno
    self.message = message
  }

  public init(_ error: ObjectStoreError) {
    let code: Int32 =
      switch error.kind {
      case .notFound, .noSuchBucket: ENOENT
      // The object changed under an open file: its old bytes are gone.
      case .preconditionFailed: ESTALE
      case .accessDenied: EACCES
      case .timedOut: ETIMEDOUT
      case .unreachable, .invalidResponse, .serverError, .invalidRequest: EIO
      }
    self.init(errno: code, error.message)
  }

  /// The error with what was being done in front: "listing s3://b/x/: <why>".
  public init(_ error: ObjectStoreError, context: String) {
    self.init(error)
    message = "\(context) failed: \(error.message)"
  }

  public var description: String { message }

  static func noEntry(_ what: String) -> FilesystemError { FilesystemError(errno: ENOENT, "no such entry: \(what)") }
  static let badHandle = FilesystemError(errno: EBADF, "unknown file handle")
}
