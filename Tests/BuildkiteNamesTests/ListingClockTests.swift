import BuildkiteAPI
import BuildkiteNames
import Catalog
import Foundation
import HTTPTransport
import LogFS
import SystemBase
import TestSupport
import Testing

/// The catalog's listings are judged fresh by the namespace's clock (its wall clock: they are kept
/// across mounts), so their TTL is tested without waiting it out.
@Suite struct ListingClockTests {
  @Test func aListingIsAskedForAgainOnlyOnceItsTTLHasPassedOnTheClock() throws {
    let fake = try FakeBuildkite()
    defer { fake.stop() }
    try withTemporaryDirectory { directory in
      let log = CapturedLog()
      let api = try BuildkiteClient(
        configuration: BuildkiteConfiguration(
          baseURL: fake.baseURL, token: FakeBuildkite.fullToken,
          timeouts: HTTPTimeouts(connect: 2, stall: 10, total: 60),
          retryBaseDelay: 0.01, retryMaxDelay: 0.05))
      let clock = FakeClock()
      let names = BuildkiteNamespace(
        api: api, catalog: try Catalog(path: directory + "/catalog.sqlite", logger: log.logger),
        logStore: BuildkiteLogStore(api: api), configuration: BuildkiteNamesConfiguration(listingTTL: 60),
        clock: clock, logger: log.logger)
      func organizationListings() throws -> Int {
        ((try fake.requests()["endpoints"] as? [String: Any])?["GET /v2/organizations"] as? Int) ?? 0
      }
      let first = try names.list(directory: names.rootKey).entries.map(\.name)
      #expect(!first.isEmpty)
      let asked = try organizationListings()
      #expect(asked >= 1)
      clock.advance(59)
      #expect(try names.list(directory: names.rootKey).entries.map(\.name) == first)
      #expect(try organizationListings() == asked)
      clock.advance(2)
      #expect(try names.list(directory: names.rootKey).entries.map(\.name) == first)
      #expect(try organizationListings() > asked)
    }
  }
}
