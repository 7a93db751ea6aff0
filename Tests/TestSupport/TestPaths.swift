public import Foundation

/// Folders of this package the tests read from, found from this file's path (the package root is
/// three levels above it), so tests run from any working directory.
public enum TestPaths {
  /// `Tests/`.
  public static let tests = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()  // TestSupport
    .deletingLastPathComponent()  // Tests

  /// The package root.
  public static let packageRoot = tests.deletingLastPathComponent()

  /// A Python program of the tests, by its path under `Tests/`: `servers/hostile_server.py`,
  /// `e2e/fault_proxy.py`.
  public static func script(_ path: String) -> String { tests.appendingPathComponent(path).path }
}
