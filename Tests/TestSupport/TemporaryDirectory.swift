import Foundation
import Glibc

public struct TemporaryDirectoryError: Error, CustomStringConvertible {
  public var description: String
}

/// Runs `body` with a fresh directory under /tmp, removed afterwards whether `body` returns or throws.
public func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
  let path = try makeTemporaryDirectory()
  defer { try? FileManager.default.removeItem(atPath: path) }
  return try body(path)
}

public func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
  let path = try makeTemporaryDirectory()
  defer { try? FileManager.default.removeItem(atPath: path) }
  return try await body(path)
}

private func makeTemporaryDirectory() throws -> String {
  var template = Array("/tmp/bklogfs-test-XXXXXX".utf8CString)
  let path = template.withUnsafeMutableBufferPointer { buffer -> String? in
    guard let result = mkdtemp(buffer.baseAddress!) else { return nil }
    return String(cString: result)
  }
  guard let path else { throw TemporaryDirectoryError(description: "mkdtemp failed: errno \(errno)") }
  return path
}
