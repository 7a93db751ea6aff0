import BlockCache
import BuildkiteAPI
import BuildkiteNames
import Catalog
import Foundation
import HTTPTransport
import LogFS
import Logging
import ObjectStore
import TestSupport
import Testing

/// Buildkite's names from the fake API's hostile world (`world.py --hostile`), through the
/// filesystem core without FUSE: every name is shown as it is, renamed safely (aliases), or left
/// out with one warning (doc/NAMES.md, "Hostile names").
@Suite(.serialized) final class HostileBuildkiteNamesTests {
  let fake: FakeBuildkite
  let directory: String
  let log = CapturedLog()
  let filesystem: LogFilesystem

  init() throws {
    fake = try FakeBuildkite(worldOptions: ["--hostile", "--big-builds", "3"])
    directory = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let api = try BuildkiteClient(
      configuration: BuildkiteConfiguration(
        baseURL: fake.baseURL, token: FakeBuildkite.fullToken, timeouts: HTTPTimeouts(connect: 2, stall: 10, total: 60),
        retryBaseDelay: 0.01, retryMaxDelay: 0.05))
    let catalog = try Catalog(path: directory + "/catalog.sqlite", logger: log.logger)
    let names = BuildkiteNamespace(
      api: api, catalog: catalog, logStore: BuildkiteLogStore(api: api),
      configuration: BuildkiteNamesConfiguration(), logger: log.logger)
    filesystem = LogFilesystem(
      namespace: names, configuration: FilesystemConfiguration(fetchThreads: 1),
      memoryCache: MemoryBlockCache(maxBytes: 1 << 20), diskCache: nil, logger: log.logger)
  }

  deinit {
    filesystem.shutdown()
    fake.stop()
    try? FileManager.default.removeItem(atPath: directory)
  }

  func resolve(_ path: [String]) throws -> Attributes {
    var attributes = try filesystem.attributes(of: LogFilesystem.rootInode)
    for name in path { attributes = try filesystem.lookup(parent: attributes.inode, name: name) }
    return attributes
  }

  func names(_ path: [String]) throws -> [String] {
    let handle = try filesystem.openDirectory(try resolve(path).inode)
    defer { filesystem.releaseDirectory(handle) }
    return try filesystem.readDirectory(handle, from: 0).map(\.name).filter { $0 != "." && $0 != ".." }
  }

  func read(_ path: [String]) throws -> [UInt8] {
    let handle = try filesystem.openFile(try resolve(path).inode)
    defer { filesystem.releaseFile(handle) }
    return try filesystem.read(handle, offset: 0, count: 1 << 20)
  }

  func warnings(containing text: String) -> [String] {
    log.all.filter { $0.hasPrefix("warning left out") && $0.contains(text) }
  }

  @Test func slugsAndBuildNumbers() throws {
    #expect(Set(try names([])) == ["acme", "buildkite", "empty-org", "hostile"])
    for slug in ["", "..", "o/../../x", String(repeating: "o", count: 1000)] {
      #expect(warnings(containing: "left out /\(slug):").count == 1, "\(slug)")
    }
    let pipelines = try names(["hostile"])
    #expect(Set(pipelines) == ["names", "   ", "new\nline", "日本語", String(repeating: "p", count: 255), "dup"])
    #expect(pipelines.count == 6)
    for slug in ["", ".", "..", "a/b", "nul\\x0", String(repeating: "p", count: 1000)] {
      #expect(warnings(containing: "left out /hostile/\(slug):").count == 1, "\(slug)")
    }
    #expect(warnings(containing: "of 2 pipelines in /hostile named dup").count == 1)
    for slug in pipelines { _ = try names(["hostile", slug]) }
    #expect(try names(["hostile", "names"]) == ["1", "2", "3"])
    #expect(warnings(containing: "left out /hostile/names/-1:").count == 1)
    #expect(warnings(containing: "of 2 builds in /hostile/names named 3").count == 1)
    #expect(throws: FilesystemError.self) { try self.resolve(["hostile", "names", "-1"]) }
  }

  @Test func jobIDsAndAliases() throws {
    let build = ["hostile", "names", "1"]
    let entries = try names(build)
    var links: [String: String] = [:]
    for name in entries where try resolve(build + [name]).kind == .symlink {
      links[name] = try filesystem.readLink(try resolve(build + [name]).inode)
    }
    let files = Set(entries).subtracting(links.keys)
    #expect(files.contains("not-a-uuid.log") && files.contains("lint.log") && files.contains("nl\nid.log"))
    #expect(files.contains("build.json"))
    #expect(files.count == 18, "\(files.sorted())")
    // Every link points at a file of this directory, by its bare name.
    #expect(Set(links.values) == files.subtracting(["build.json"]))
    for (alias, target) in links {
      #expect(nameProblem(alias) == nil && alias.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }, "\(alias)")
      #expect(!target.contains("/"), "\(target)")
      #expect(try resolve(build + [target]).kind == .file, "\(alias) -> \(target)")
    }
    for alias in ["plain.log", "etc-passwd.log", "a-b.log", "nul-byte.log", "line-break.log", "build.json.log"] {
      #expect(links[alias] != nil, "\(alias): \(links.keys.sorted())")
    }
    #expect(links["lint.log"] == nil, "the job whose ID is lint owns lint.log")
    #expect(try read(build + ["not-a-uuid.log"]) == Array("log of not_uuid (13)\r\n".utf8))
    for id in ["x/../../y", "..", String(repeating: "i", count: 300), ".", "nul\\x0id", ""] {
      #expect(warnings(containing: "left out job \(id) of hostile/names/1:").count == 1, "\(id)")
    }
    #expect(log.all.filter { $0.contains("of 2 jobs in /hostile/names/1 named") }.count == 1)
    #expect(log.all.filter { $0.hasPrefix("error") }.isEmpty, "\(log.all)")
  }

  @Test func aLoneSurrogateInALabel() throws {
    let build = ["hostile", "names", "2"]
    let entries = try names(build)
    #expect(entries.contains("fine.log"))
    // The label is read with U+FFFD for the lone surrogate, which the alias leaves out.
    #expect(Set(entries).subtracting(["build.json", "fine.log", "bad-label.log"]).count == 2, "\(entries)")
    let target = try filesystem.readLink(try resolve(build + ["bad-label.log"]).inode)
    #expect(try read(build + [target]) == Array("surrogate label\r\n".utf8))
  }
}

/// What the decoder makes of text that is not UTF-8 in Buildkite's JSON.
@Suite struct HostileJSONTests {
  func build(_ label: [UInt8]) -> [UInt8] {
    Array(#"{"id": "b1", "number": 7, "state": "passed", "jobs": [{"id": "j1", "type": "script", "name": ""#.utf8)
      + label + Array(#"", "step_key": "k"}]}"#.utf8)
  }

  @Test func textThatIsNotUnicodeLosesOnlyItself() throws {
    // Lone surrogate escapes, and raw bytes that are not UTF-8 (JSON must be UTF-8, RFC 8259), are
    // read as U+FFFD: the label loses those characters, the build and its other jobs stand.
    let cases: [[UInt8]] = [
      Array(#"bad \udc80 label"#.utf8), Array(#"bad \ud800 label"#.utf8), Array(#"bad \ud800\u0041 label"#.utf8),
      Array(#"bad \uDBFF\uDBFF label"#.utf8), Array("bad ".utf8) + [0xFF] + Array(" label".utf8),
      Array("bad ".utf8) + [0xC3] + Array(" label".utf8),
      Array("bad ".utf8) + [0xED, 0xB2, 0x80] + Array(" label".utf8),
    ]
    for label in cases {
      let decoded = try Build(json: build(label))
      #expect(decoded.jobs.count == 1 && decoded.jobs.first?.stepKey == "k", "\(label)")
      let name = try #require(decoded.jobs.first?.name, "\(label)")
      #expect(name.hasPrefix("bad \u{FFFD}") && name.hasSuffix(" label"), "\(name)")
      #expect(decoded.raw == build(label), "build.json keeps the bytes the API sent")
    }
    // A proper pair is a character, kept.
    let pair = try Build(json: build(Array(#"clef \ud834\udd1e"#.utf8)))
    #expect(pair.jobs.first?.name == "clef \u{1D11E}")
    // And an escaped backslash before "u" is not an escape.
    let literal = try Build(json: build(Array(#"\\ud800"#.utf8)))
    #expect(literal.jobs.first?.name == #"\ud800"#)
  }
}
