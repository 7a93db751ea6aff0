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

/// The names tree's directory times, against the fake API's world (doc/SEMANTICS.md, "Attributes"):
/// a build shows when it finished (else when it was created), a pipeline and an organization their
/// newest build the catalog holds, a link the time of its log.
@Suite(.serialized) final class BuildkiteTimesTests {
  let fake: FakeBuildkite
  let directory: String
  let log = CapturedLog()
  let epoch = Timestamp(seconds: 0)

  init() throws {
    (fake, directory) = try unthrottledFake("times")
  }

  deinit {
    fake.stop()
    try? FileManager.default.removeItem(atPath: directory)
  }

  /// A namespace over its own catalog file: a new name means a catalog that knows nothing yet.
  func names(catalog: String, clock: FakeClock = FakeClock()) throws -> BuildkiteNamespace {
    let api = try BuildkiteClient(
      configuration: BuildkiteConfiguration(
        baseURL: fake.baseURL, token: FakeBuildkite.fullToken, timeouts: HTTPTimeouts(connect: 2, stall: 10, total: 60),
        retryBaseDelay: 0.01, retryMaxDelay: 0.05))
    return BuildkiteNamespace(
      api: api, catalog: try Catalog(path: "\(directory)/\(catalog).sqlite", logger: log.logger),
      logStore: BuildkiteLogStore(api: api), configuration: BuildkiteNamesConfiguration(recentBuilds: 6),
      clock: clock, logger: log.logger)
  }

  func filesystem(_ names: BuildkiteNamespace, clock: FakeClock = FakeClock()) -> LogFilesystem {
    LogFilesystem(
      namespace: names, configuration: FilesystemConfiguration(fetchThreads: 1, directoryTTL: 60),
      memoryCache: MemoryBlockCache(maxBytes: 1 << 20), diskCache: nil, clock: clock, logger: log.logger)
  }

  func resolve(_ fs: LogFilesystem, _ path: [String]) throws -> Attributes { try fs.resolve(path) }

  /// The directory's entries as readdir gives them, "." included.
  func listing(_ fs: LogFilesystem, _ path: [String]) throws -> [String: Attributes] { try fs.listing(path) }

  /// The whole seconds of a time as the API writes it.
  func seconds(_ text: String) throws -> Timestamp {
    let parser = ISO8601DateFormatter()
    parser.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return Timestamp(seconds: Int64(try #require(parser.date(from: text)).timeIntervalSince1970))
  }

  /// Each build of a pipeline in the fake's world, by number, with its finish (else creation) time.
  func worldTimes(_ organization: String, _ pipeline: String) throws -> [String: Timestamp] {
    let organizations = try fake.world()["organizations"] as? [[String: Any]] ?? []
    let pipelines = organizations.first { $0["slug"] as? String == organization }?["pipelines"] as? [[String: Any]]
    let builds = pipelines?.first { $0["slug"] as? String == pipeline }?["builds"] as? [[String: Any]] ?? []
    var times: [String: Timestamp] = [:]
    for build in builds {
      let text = try #require((build["finished_at"] as? String) ?? (build["created_at"] as? String))
      times[String(try #require(build["number"] as? Int))] = try seconds(text)
    }
    return times
  }

  @Test func aBuildShowsItsFinishElseCreationAndAPipelineAndOrganizationTheirNewestBuild() throws {
    let clock = FakeClock()
    let fs = filesystem(try names(catalog: "catalog"), clock: clock)
    // Before any build is known, nothing has a time to show.
    let pipelinesFirst = try listing(fs, ["acme"])
    #expect(pipelinesFirst["web-app"]?.modified == epoch && pipelinesFirst["tools"]?.modified == epoch)

    let web = try worldTimes("acme", "web-app")
    let listedWeb = try listing(fs, ["acme", "web-app"]).filter { $0.key != "." && $0.key != ".." }
    #expect(listedWeb.count == 6)
    for (number, attributes) in listedWeb {
      #expect(attributes.modified == web[number], "build \(number)")
    }
    let tools = try worldTimes("acme", "tools")
    let listedTools = try listing(fs, ["acme", "tools"]).filter { $0.key != "." && $0.key != ".." }
    #expect(Set(listedTools.keys) == ["1", "2", "3", "4", "5", "6"])
    // Build 4 is still running: it shows when it was created.
    for (number, attributes) in listedTools {
      #expect(attributes.modified == tools[number], "build \(number)")
    }
    #expect(try resolve(fs, ["acme", "tools", "2", "build.json"]).modified == tools["2"])

    // Once the organization is listed again, each pipeline shows its newest build the catalog holds,
    // and the organization the newest of its pipelines'.
    clock.advance(61)
    let newestWeb = try #require(listedWeb.values.map(\.modified).max())
    let newestTools = try #require(tools.values.max())
    let pipelines = try listing(fs, ["acme"])
    #expect(pipelines["web-app"]?.modified == newestWeb)
    #expect(pipelines["tools"]?.modified == newestTools)
    #expect(newestWeb == web.values.max() && newestWeb != newestTools)
    let organizations = try listing(fs, [])
    #expect(organizations["acme"]?.modified == max(newestWeb, newestTools))
    #expect(organizations["empty-org"]?.modified == epoch)
    #expect(organizations["."]?.modified == epoch)
  }

  @Test func aBuildLookedUpByNumberShowsTheTimeItsListingGives() throws {
    let listed = try listing(filesystem(try names(catalog: "listed")), ["acme", "web-app"]).filter {
      $0.key != "." && $0.key != ".."
    }
    let web = try worldTimes("acme", "web-app")
    // Another catalog, which knows no build: each is looked up by number, never listed.
    let fresh = try names(catalog: "looked-up")
    let fs = filesystem(fresh)
    for (number, attributes) in listed {
      #expect(try resolve(fs, ["acme", "web-app", number]).modified == attributes.modified, "build \(number)")
    }
    // A build beyond the listing's window, by the namespace and through the filesystem.
    #expect(try fresh.lookup(directory: "/acme/web-app", name: "50")?.modified == web["50"])
    #expect(try resolve(fs, ["acme", "web-app", "50"]).modified == web["50"])
    // And the listing the looked-up catalog then gives agrees.
    let relisted = try fresh.list(directory: "/acme/web-app").entries
    #expect(relisted.count == listed.count)
    for entry in relisted { #expect(entry.modified == listed[entry.name]?.modified, "build \(entry.name)") }
  }

  @Test func aRunningBuildShowsItsCreationUntilItFinishesAndItsPipelineMovesOn() throws {
    let clock = FakeClock()
    let fs = filesystem(try names(catalog: "catalog", clock: clock), clock: clock)
    let tools = try worldTimes("acme", "tools")
    #expect(try listing(fs, ["acme", "tools"])["4"]?.modified == tools["4"])
    #expect(try listing(fs, ["acme"])["tools"]?.modified == tools.values.max())
    let answer = try fake.control("finish-build", ["org": "acme", "pipeline": "tools", "number": 4])
    let finished = try seconds(try #require(answer["finished_at"] as? String))
    // Past the listing TTL, the build is fetched again: it shows its finish, and is now the
    // pipeline's and the organization's newest.
    clock.advance(61)
    #expect(try listing(fs, ["acme", "tools"])["4"]?.modified == finished)
    #expect(try listing(fs, ["acme"])["tools"]?.modified == finished)
    #expect(try listing(fs, [])["acme"]?.modified == finished)
    #expect(finished > tools.values.max()!)
  }

  @Test func anAliasShowsTheTimeOfTheLogItPointsTo() throws {
    let fs = filesystem(try names(catalog: "catalog"))
    let build = ["acme", "tools", "2"]
    let entries = try listing(fs, build)
    let links = entries.filter { $0.value.kind == .symlink }
    #expect(links.count == 5, "\(entries.keys.sorted())")
    for (alias, attributes) in links {
      let target = try fs.readLink(attributes.inode)
      let log = try #require(entries[target], "\(alias) -> \(target)")
      #expect(attributes.modified == log.modified, "\(alias) -> \(target)")
      #expect(try resolve(fs, build + [alias]).modified == log.modified, "\(alias)")
    }
    // The attempts finished at different times, so each link follows its own log.
    #expect(Set(links.values.map(\.modified)).count > 1)
    #expect(!links.values.contains { $0.modified == epoch })
  }
}
