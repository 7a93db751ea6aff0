import Foundation
import LogFS
import TestSupport

/// The fake API with budgets no test reaches, and a new directory (named from `prefix`) for catalogs.
func unthrottledFake(_ prefix: String) throws -> (fake: FakeBuildkite, directory: String) {
  let fake = try FakeBuildkite(serverOptions: ["--org-rate-limit", "100000", "--user-rate-limit", "100000"])
  let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
  try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  return (fake, directory)
}

extension LogFilesystem {
  /// The attributes of the node at `path` below the root, looked up name by name as the kernel would.
  func resolve(_ path: [String]) throws -> Attributes {
    var attributes = try attributes(of: LogFilesystem.rootInode)
    for name in path { attributes = try lookup(parent: attributes.inode, name: name) }
    return attributes
  }

  /// The entries of the directory at `path` as readdir gives them, "." and ".." included.
  func listing(_ path: [String]) throws -> [String: Attributes] {
    let handle = try openDirectory(try resolve(path).inode)
    defer { releaseDirectory(handle) }
    return Dictionary(uniqueKeysWithValues: try readDirectory(handle, from: 0).map { ($0.name, $0.attributes) })
  }
}
