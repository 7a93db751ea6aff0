import Glibc
public import SystemPackage

// The calls swift-system makes (open, close, pread, pwrite, fstat) are made through it; this module
// adds what it lacks, through `systemCall`, and gives every failure the same shape: the function,
// the path it was about, and the errno.

/// A failed system call: the C function's name, `errno`, and the path it was about, if any.
public struct SystemCallError: Error, Sendable, CustomStringConvertible {
  public var function: String
  public var errno: Errno
  public var path: String?

  public init(function: String, errno: Errno, path: String? = nil) {
    self.function = function
    self.errno = errno
    self.path = path
  }

  public var description: String {
    if let path { return "\(function)(\(path)): \(reason) (errno \(errno.rawValue))" }
    return "\(function): \(reason) (errno \(errno.rawValue))"
  }

  /// The reason alone (`strerror`), for sentences written for users.
  public var reason: String { errno.description }
}

/// Calls `body` until it does not fail with EINTR; a result of -1 throws with the current `errno`,
/// naming `function` and `path`.
@inline(__always)
public func systemCall<Result: FixedWidthInteger>(
  _ function: String, path: String? = nil, _ body: () -> Result
) throws(SystemCallError) -> Result {
  while true {
    let result = body()
    if result != -1 { return result }
    let error = Glibc.errno
    if error == EINTR { continue }
    throw SystemCallError(function: function, errno: Errno(rawValue: error), path: path)
  }
}

/// Runs a call of swift-system's (which retries EINTR itself and throws a bare `Errno`), naming
/// `function` and `path` in what it throws.
@inline(__always)
func naming<Result>(
  _ function: String, path: String?, _ body: () throws -> Result
) throws(SystemCallError) -> Result {
  do {
    return try body()
  } catch let error as Errno {
    throw SystemCallError(function: function, errno: error, path: path)
  } catch {
    preconditionFailure("swift-system threw \(error), which is not an Errno")
  }
}

/// The text of the `errno` the last failed call left (`strerror(errno)`).
public func lastError() -> String { Errno(rawValue: Glibc.errno).description }

/// The text of an error number returned rather than left in `errno` (`strerror`), as
/// `posix_spawn` and `pthread_create` do.
public func errorText(_ code: Int32) -> String { Errno(rawValue: code).description }
