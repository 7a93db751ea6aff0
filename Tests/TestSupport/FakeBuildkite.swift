public import Foundation
import HTTPTransport
public import Testing

/// The project's fake Buildkite API (`Tests/fake_buildkite/server.py`) on a loopback port, with a
/// world written by `world.py`. Stopped by `stop()` or when the test process exits (see `ChildServer`).
public final class FakeBuildkite: @unchecked Sendable {
  public let server: ChildServer
  public let worldPath: String
  private let directory: URL
  private let http = HTTPClient(timeouts: HTTPTimeouts(connect: 2, stall: 10, total: 30))

  /// Tokens the fake's world knows (see world.py).
  public static let fullToken = "bkua_fake_full"
  public static let noLogsToken = "bkua_fake_no_logs"
  public static let orgsOnlyToken = "bkua_fake_orgs_only"
  public static let noBuildsToken = "bkua_fake_no_builds"

  /// `Tests/fake_buildkite` in this package.
  public static var scriptsDirectory: URL { TestPaths.tests.appendingPathComponent("fake_buildkite") }

  /// Writes a world (extra `world.py` options such as `--big-builds 250`) and starts the server
  /// (extra `server.py` options such as `--user-rate-limit 10 --rate-window 2`).
  public init(worldOptions: [String] = [], serverOptions: [String] = []) throws {
    directory = FileManager.default.temporaryDirectory.appendingPathComponent("fake-bk-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    worldPath = directory.appendingPathComponent("world.json").path
    let scripts = Self.scriptsDirectory
    let writer = Process()
    writer.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    writer.arguments = ["python3", scripts.appendingPathComponent("world.py").path, worldPath] + worldOptions
    try writer.run()
    writer.waitUntilExit()
    guard writer.terminationStatus == 0 else {
      throw ServerError(message: "world.py failed (exit \(writer.terminationStatus))")
    }
    server = try ChildServer(
      ["python3", scripts.appendingPathComponent("server.py").path, "--world", worldPath, "--port", "{port}"]
        + serverOptions)
  }

  /// The API base URL, like `https://api.buildkite.com/v2`.
  public var baseURL: String { server.endpoint + "/v2" }

  public func stop() {
    server.stop()
    try? FileManager.default.removeItem(at: directory)
  }

  deinit { stop() }

  /// POSTs a control request (`/__fake__/NAME`) with a JSON body; returns the JSON answer.
  @discardableResult
  public func control(_ name: String, _ body: [String: Any] = [:]) throws -> [String: Any] {
    let data = try JSONSerialization.data(withJSONObject: body)
    let (response, answer) = try http.fetch(
      HTTPRequest(
        method: "POST", url: "\(server.endpoint)/__fake__/\(name)",
        headers: [(name: "Content-Type", value: "application/json")], body: [UInt8](data)))
    guard response.status == 200 else {
      throw ServerError(message: "/__fake__/\(name) answered \(response.status)")
    }
    return (try JSONSerialization.jsonObject(with: Data(answer)) as? [String: Any]) ?? [:]
  }

  /// The fake's request counters: `endpoints` ("GET /v2/organizations/{org}/pipelines" → count),
  /// `statuses` ("429" → count), `total`, `log_requests`.
  public func requests() throws -> [String: Any] {
    let (_, answer) = try http.fetch(HTTPRequest(url: "\(server.endpoint)/__fake__/requests"))
    return (try JSONSerialization.jsonObject(with: Data(answer)) as? [String: Any]) ?? [:]
  }

  /// Requests answered with `status`.
  public func count(status: Int) throws -> Int {
    ((try requests()["statuses"] as? [String: Any])?["\(status)"] as? Int) ?? 0
  }

  /// The world as JSON, for looking up ids.
  public func world() throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: worldPath))
    return (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
  }

  /// The stored jobs (every attempt) of build `number` of `org`/`pipeline` in the world.
  public func storedJobs(org: String, pipeline: String, number: Int) throws -> [[String: Any]] {
    let world = try world()
    let orgs = world["organizations"] as? [[String: Any]] ?? []
    let pipelines = orgs.first { $0["slug"] as? String == org }?["pipelines"] as? [[String: Any]] ?? []
    let builds = pipelines.first { $0["slug"] as? String == pipeline }?["builds"] as? [[String: Any]] ?? []
    return builds.first { $0["number"] as? Int == number }?["jobs"] as? [[String: Any]] ?? []
  }

  /// The bytes the fake serves for a job's log (nil when deleted or missing); not for growing logs.
  public func logBytes(jobID: String) throws -> [UInt8]? {
    let logs = try world()["logs"] as? [String: Any] ?? [:]
    guard let spec = logs[jobID] as? [String: Any], spec["deleted"] == nil else { return nil }
    if let path = spec["path"] as? String { return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }
    if let encoded = spec["base64"] as? String, let data = Data(base64Encoded: encoded) { return [UInt8](data) }
    return nil
  }

  /// Starts a fake for a test, or nil after recording an issue (CI) or printing why the test is
  /// skipped (python3 or Flask missing).
  public static func start(
    worldOptions: [String] = [], serverOptions: [String] = [], sourceLocation: SourceLocation = #_sourceLocation
  ) -> FakeBuildkite? {
    do {
      return try FakeBuildkite(worldOptions: worldOptions, serverOptions: serverOptions)
    } catch {
      if Moto.isCI {
        Issue.record(
          "the fake Buildkite API did not start: \(error) (CI=true, so this fails)", sourceLocation: sourceLocation)
      } else {
        print("skipped: the fake Buildkite API did not start: \(error)")
      }
      return nil
    }
  }
}
