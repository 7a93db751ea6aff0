import Glibc
public import Logging
public import ObjectStore

/// A failed filesystem operation: its kind (which decides the errno the kernel gets and how loudly
/// the failure is logged), one sentence for the log, and the error that caused it.
///
/// Nothing below the FUSE adapter logs a failure it throws: the adapter logs each one once, at its
/// kind's level, where it sends the reply (`FuseOperations.swift`). Background work that no reply
/// waits for (readahead, a walk's prefetch) logs its own failures, at debug.
public struct FilesystemError: Error, Sendable, CustomStringConvertible {
  /// What went wrong, as far as the caller and the kernel care. Kinds are values, not cases, so
  /// that a new one is one line in the table below; compared by name.
  public struct Kind: Sendable, Hashable, CustomStringConvertible {
    public let name: String
    /// What the kernel is answered.
    public let errno: Int32
    /// How loudly a reply with it is logged.
    public let level: Logger.Level

    public init(_ name: String, errno: Int32, level: Logger.Level) {
      self.name = name
      self.errno = errno
      self.level = level
    }

    public static func == (lhs: Kind, rhs: Kind) -> Bool { lhs.name == rhs.name }
    public func hash(into hasher: inout Hasher) { hasher.combine(name) }
    public var description: String { name }
  }

  public var kind: Kind
  public var message: String
  /// The failure underneath, such as the `ObjectStoreError` or `BuildkiteError` a call threw.
  public var cause: (any Error & Sendable)?

  public init(_ kind: Kind, _ message: String, cause: (any Error & Sendable)? = nil) {
    self.kind = kind
    self.message = message
    self.cause = cause
  }

  public var errno: Int32 { kind.errno }
  public var level: Logger.Level { kind.level }
  public var description: String { message }
}

// The one table of kinds: each with its errno and the level its reply is logged at. Expected
// answers (a missing name, a wrong kind of file) stay out of an ordinary log; failures of the store
// or the network are errors.
extension FilesystemError.Kind {
  public static let notFound = Self("not found", errno: ENOENT, level: .trace)
  public static let notADirectory = Self("not a directory", errno: ENOTDIR, level: .debug)
  public static let isADirectory = Self("a directory", errno: EISDIR, level: .debug)
  public static let isALink = Self("a symbolic link", errno: ELOOP, level: .debug)
  public static let notALink = Self("not a symbolic link", errno: EINVAL, level: .debug)
  public static let nameTooLong = Self("name too long", errno: ENAMETOOLONG, level: .debug)
  public static let badHandle = Self("unknown handle", errno: EBADF, level: .debug)
  /// The object changed under an open file: its old bytes are gone.
  public static let stale = Self("stale", errno: ESTALE, level: .error)
  public static let denied = Self("denied", errno: EACCES, level: .error)
  /// The object is archived and not restored (`ObjectStoreError.Kind.archived`): "Object is remote",
  /// as s3fs answers too, rather than EACCES, which would blame the credentials.
  public static let archived = Self("archived, not restored", errno: EREMOTE, level: .warning)
  /// The object is encrypted with a customer-provided key (SSE-C), which the mount does not hold:
  /// "Required key not available", as a file of an encrypted directory whose key is not loaded.
  public static let encrypted = Self("encrypted with a customer key", errno: ENOKEY, level: .warning)
  public static let timedOut = Self("timed out", errno: ETIMEDOUT, level: .error)
  public static let unreachable = Self("unreachable", errno: EIO, level: .error)
  public static let server = Self("server error", errno: EIO, level: .error)
  public static let malformed = Self("malformed answer", errno: EIO, level: .error)
  /// A request the store refused as wrong (a range past the end, a 400).
  public static let invalidRequest = Self("invalid request", errno: EIO, level: .error)
  /// A local part failed (the catalog).
  public static let local = Self("local failure", errno: EIO, level: .error)

  /// The kind of an object store's failure.
  public init(_ kind: ObjectStoreError.Kind) {
    self =
      switch kind {
      case .notFound, .noSuchBucket: .notFound
      case .preconditionFailed: .stale
      case .accessDenied: .denied
      case .archived: .archived
      case .customerKeyRequired: .encrypted
      case .timedOut: .timedOut
      case .unreachable: .unreachable
      case .serverError: .server
      case .invalidResponse: .malformed
      case .invalidRequest: .invalidRequest
      }
  }
}

extension FilesystemError {
  /// An object store's failure, with its message and itself as the cause.
  public init(_ error: ObjectStoreError) {
    self.init(Kind(error.kind), error.message, cause: error)
  }

  /// The error with what was being done in front: "listing s3://b/x/ failed: <why>".
  public init(_ error: ObjectStoreError, context: String) {
    self.init(Kind(error.kind), "\(context) failed: \(error.message)", cause: error)
  }

  static func noEntry(_ what: String) -> FilesystemError { FilesystemError(.notFound, "no such entry: \(what)") }
  static let badHandle = FilesystemError(.badHandle, "unknown file handle")
}
