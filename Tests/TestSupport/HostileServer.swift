import Foundation

/// `Tests/servers/hostile_server.py` on a loopback port: a server whose every answer is hostile
/// (a body of `hugeBytes` that never ends, a document nested 100,000 deep), chosen by the first
/// segment of the request's path; its header lists them.
public enum HostileServer {
  public static func start() throws -> ChildServer {
    try ChildServer(["python3", TestPaths.script("servers/hostile_server.py"), "{port}"])
  }

  public static let hugeBytes = 100_000_000
}

/// The inputs kept for a fuzz target in `Fuzz/Corpus/<target>/` (seeds, and inputs fuzzing found),
/// for the unit tests that replay them. The corpus is part of the repository, so an empty one is an error.
public enum FuzzCorpus {
  public static func inputs(_ target: String) throws -> [(name: String, bytes: [UInt8])] {
    let folder = TestPaths.packageRoot.appendingPathComponent("Fuzz/Corpus/\(target)")
    let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
    guard !names.isEmpty else { throw FuzzCorpusError(description: "no fuzz corpus in \(folder.path)") }
    return try names.map { name in
      (name, Array(try Data(contentsOf: folder.appendingPathComponent(name))))
    }
  }
}

public struct FuzzCorpusError: Error, CustomStringConvertible {
  public var description: String
}
