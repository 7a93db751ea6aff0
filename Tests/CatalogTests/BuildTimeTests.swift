import Catalog
import TestSupport
import Testing

/// The newest build time of each pipeline and organization, which their directories show.
@Suite struct BuildTimeTests {
  func timed(
    _ number: Int, pipeline: String, organization: String = "acme", created: Int64?, finished: Int64?
  ) -> CatalogBuild {
    var made = build(number, organization: organization, pipeline: pipeline, finished: finished != nil)
    made.createdAt = created
    made.finishedAt = finished
    return made
  }

  func times(_ found: [(slug: String, time: Int64)]) -> [String: Int64] {
    Dictionary(uniqueKeysWithValues: found.map { ($0.slug, $0.time) })
  }

  @Test func aPipelinesTimeIsItsNewestBuildsFinishElseCreation() throws {
    let catalog = try Catalog.inMemory(logger: testLogger)
    try catalog.upsert(organizations: [organization(1, slug: "acme"), organization(2, slug: "other")])
    try catalog.upsert(pipelines: [
      pipeline(1, slug: "web"), pipeline(2, slug: "tools"), pipeline(3, slug: "idle"), pipeline(4, slug: "untimed"),
      pipeline(5, organization: "other", slug: "web"),
    ])
    try catalog.upsert(builds: [
      // A higher number is not a newer time: the newest finish wins.
      (timed(1, pipeline: "web", created: 100, finished: 900), []),
      (timed(2, pipeline: "web", created: 200, finished: 400), []),
      // A running build counts by its creation, newer than any finish here.
      (timed(1, pipeline: "tools", created: 50, finished: 60), []),
      (timed(2, pipeline: "tools", created: 1_000, finished: nil), []),
      (timed(1, pipeline: "untimed", created: nil, finished: nil), []),
      (timed(1, pipeline: "web", organization: "other", created: 5_000, finished: 6_000), []),
      // Builds of a pipeline the catalog no longer holds (renamed) are in no directory.
      (timed(1, pipeline: "renamed", created: 9_000, finished: 9_500), []),
    ])
    #expect(times(try catalog.newestBuildTimes(organizationSlug: "acme")) == ["web": 900, "tools": 1_000])
    #expect(times(try catalog.newestBuildTimes(organizationSlug: "other")) == ["web": 6_000])
    #expect(try catalog.newestBuildTimes(organizationSlug: "nobody").isEmpty)
    #expect(times(try catalog.newestBuildTimesOfOrganizations()) == ["acme": 1_000, "other": 6_000])

    // A newer build moves its pipeline's and organization's time forward.
    try catalog.upsert(builds: [(timed(3, pipeline: "web", created: 1_500, finished: 2_000), [])])
    #expect(times(try catalog.newestBuildTimes(organizationSlug: "acme"))["web"] == 2_000)
    #expect(times(try catalog.newestBuildTimesOfOrganizations())["acme"] == 2_000)
  }
}
