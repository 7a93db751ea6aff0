public import Foundation
public import Testing

/// Where the project's third-party test data lives (see ../shared/testdata/NOTICE.md), and what a
/// test does when it is absent: under `CI=true` it fails; otherwise it says it was skipped.
///
/// The root is `$BKLOGFS_TESTDATA` when set, else `../shared/testdata` beside the package root
/// (see `TestPaths`).
public enum TestData {
  public static var root: URL {
    if let configured = ProcessInfo.processInfo.environment["BKLOGFS_TESTDATA"], !configured.isEmpty {
      return URL(fileURLWithPath: configured).standardizedFileURL
    }
    return TestPaths.packageRoot.appendingPathComponent("../shared/testdata").standardizedFileURL
  }

  public static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

  /// The folder `name` under the root when it exists (no issue recorded). For test arguments.
  public static func existingDirectory(_ name: String) -> URL? {
    let url = root.appendingPathComponent(name)
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue
    else { return nil }
    return url
  }

  /// The folder `name` under the root, or nil when it is missing: then, under `CI=true`, an issue
  /// is recorded (the test fails); otherwise a "skipped" line is printed and the caller returns.
  public static func require(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) -> URL? {
    if let url = existingDirectory(name) { return url }
    let path = root.appendingPathComponent(name).path
    if isCI {
      Issue.record(
        "test data not found at \(path) (CI=true, so this fails; set BKLOGFS_TESTDATA to the testdata folder)",
        sourceLocation: sourceLocation)
    } else {
      print("skipped: testdata not found at \(path) (set BKLOGFS_TESTDATA to the testdata folder)")
    }
    return nil
  }

  public static func text(_ url: URL) throws -> String {
    let data = try Data(contentsOf: url)
    guard let text = String(data: data, encoding: .utf8) else {
      throw CocoaError(.fileReadInapplicableStringEncoding)
    }
    return text
  }
}
