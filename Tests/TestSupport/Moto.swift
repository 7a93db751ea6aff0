import Foundation
public import Testing

/// The moto_server shared by the S3 tests, started once. Nil (with the reason) when moto_server is
/// not installed: tests then fail under `CI=true` and are skipped otherwise.
public enum Moto {
  public static let shared: Result<ChildServer, ServerError> = {
    guard let path = which("moto_server") else {
      return .failure(ServerError(message: "moto_server is not on PATH (pip install 'moto[server]')"))
    }
    do {
      return .success(try ChildServer([path, "-H", "127.0.0.1", "-p", "{port}"]))
    } catch {
      return .failure(ServerError(message: "moto_server did not start: \(error)"))
    }
  }()

  public static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

  /// The server, or nil after recording an issue (CI) or printing why the test is skipped.
  public static func require(sourceLocation: SourceLocation = #_sourceLocation) -> ChildServer? {
    switch shared {
    case .success(let server): return server
    case .failure(let error):
      if isCI {
        Issue.record("\(error.message) (CI=true, so this fails)", sourceLocation: sourceLocation)
      } else {
        print("skipped: \(error.message)")
      }
      return nil
    }
  }

  public static func which(_ name: String) -> String? {
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
      let candidate = "\(directory)/\(name)"
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
  }
}
