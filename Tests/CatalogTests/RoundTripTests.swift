import Catalog
import Testing

/// Strings that must come back byte for byte.
let oddStrings: [String] = [
  "",
  "plain",
  "ünïcødé — 日本語 — 🚀👩‍💻",
  "quotes ' \" ` and SQL'); DROP TABLE builds; --",
  "back\\slash, %percent_, newline\nand tab\t",
  "embedded\0NUL\0bytes",
  String(repeating: "long-ü-", count: 20_000),
]

@Suite struct RoundTripTests {
  @Test func organizationsRoundTrip() throws {
    let catalog = try Catalog.inMemory(logger: testLogger)
    let organizations = oddStrings.enumerated().map { index, string in
      CatalogOrganization(id: "uuid-\(index)-\(string)", slug: "slug-\(index)-\(string)", name: string)
    }
    try catalog.upsert(organizations: organizations)
    for organization in organizations {
      #expect(try catalog.organization(slug: organization.slug) == organization)
      #expect(try catalog.organization(id: organization.id) == organization)
    }
    #expect(try Set(catalog.organizations()) == Set(organizations))
    #expect(try catalog.organization(slug: "nope") == nil)
    #expect(try catalog.organization(id: "nope") == nil)
  }

  @Test func embeddedNULsAreDistinctKeys() throws {
    let catalog = try Catalog.inMemory(logger: testLogger)
    let short = CatalogOrganization(id: "1", slug: "a", name: "short")
    let withNUL = CatalogOrganization(id: "2", slug: "a\0b", name: "with\0NUL")
    try catalog.upsert(organizations: [short, withNUL])
    #expect(try catalog.organization(slug: "a") == short)
    #expect(try catalog.organization(slug: "a\0b") == withNUL)
    #expect(try catalog.organization(slug: "a\0c") == nil)
    #expect(try catalog.organizations().count == 2)
  }

  @Test func organizationsReplaceByIDAndBySlug() throws {
    let catalog = try Catalog.inMemory(logger: testLogger)
    try catalog.upsert(organizations: [organization(1, slug: "acme"), organization(2, slug: "other")])
    // Renamed: same id, new slug and name.
    try catalog.upsert(organizations: [organization(1, slug: "acme-inc", name: "Acme Inc")])
    #expect(try catalog.organization(slug: "acme") == nil)
    #expect(try catalog.organization(id: "org-uuid-1")?.slug == "acme-inc")
    #expect(try catalog.organization(id: "org-uuid-1")?.name == "Acme Inc")
    // A new organization takes a slug another id held: the old one goes.
    try catalog.upsert(organizations: [organization(3, slug: "other")])
    #expect(try catalog.organization(id: "org-uuid-2") == nil)
    #expect(try catalog.organization(slug: "other")?.id == "org-uuid-3")
    #expect(try catalog.organizations().map(\.slug) == ["acme-inc", "other"])
  }

  @Test func pipelinesRoundTrip() throws {
    let catalog = try Catalog.inMemory(logger: testLogger)
    let pipelines = oddStrings.enumerated().map { index, string in
      CatalogPipeline(id: "p-\(index)", organizationSlug: "org \(string)", slug: "slug \(string)", name: string)
    }
    try catalog.upsert(pipelines: pipelines)
    for pipeline in pipelines {
      #expect(try catalog.pipeline(organizationSlug: pipeline.organizationSlug, slug: pipeline.slug) == pipeline)
      #expect(try catalog.pipeline(id: pipeline.id) == pipeline)
      #expect(try catalog.pipelines(organizationSlug: pipeline.organizationSlug) == [pipeline])
    }
    #expect(try catalog.pipeline(organizationSlug: "org plain", slug: "slug other") == nil)
  }

  @Test func pipelinesAreScopedByOrganizationAndSorted() throws {
    let catalog = try Catalog.inMemory(logger: testLogger)
    try catalog.upsert(pipelines: [
      pipeline(1, organization: "acme", slug: "web"), pipeline(2, organization: "acme", slug: "api"),
      pipeline(3, organization: "other", slug: "web"),
    ])
    #expect(try catalog.pipelines(organizationSlug: "acme").map(\.slug) == ["api", "web"])
    #expect(try catalog.pipeline(organizationSlug: "other", slug: "web")?.id == "pipeline-uuid-3")
    #expect(try catalog.pipelines(organizationSlug: "none") == [])
    // Same (organization, slug) under a new id replaces the old pipeline.
    try catalog.upsert(pipelines: [pipeline(4, organization: "acme", slug: "web")])
    #expect(try catalog.pipeline(id: "pipeline-uuid-1") == nil)
    #expect(try catalog.pipeline(organizationSlug: "acme", slug: "web")?.id == "pipeline-uuid-4")
  }

  @Test func buildsAndJobsRoundTrip() throws {
    let catalog = try Catalog.inMemory(logger: testLogger)
    var pairs: [(build: CatalogBuild, jobs: [CatalogJob])] = []
    for (index, string) in oddStrings.enumerated() {
      let build = CatalogBuild(
        id: "b-\(index)-\(string)", organizationSlug: "o \(string)", pipelineSlug: "p \(string)", number: index,
        state: string, createdAt: index.isMultiple(of: 2) ? nil : -5, finishedAt: index.isMultiple(of: 2) ? nil : .max,
        isFinished: index.isMultiple(of: 2), json: Array(string.utf8) + [0, 255, 0])
      let full = CatalogJob(
        id: "j-\(index)-\(string)", buildID: build.id, type: "script", name: string, stepKey: string, state: string,
        parallelGroupIndex: 3, parallelGroupTotal: 10, retried: true, retriedInJobID: "other \(string)",
        retriesCount: 2, startedAt: .min, finishedAt: 0, logSize: 1 << 30)
      let empty = CatalogJob(id: "w-\(index)-\(string)", buildID: build.id, type: "waiter")
      pairs.append((build, [full, empty]))
    }
    let noJSON = CatalogBuild(
      id: "empty-json", organizationSlug: "o", pipelineSlug: "p", number: 1, state: "running", isFinished: false)
    pairs.append((noJSON, []))
    try catalog.upsert(builds: pairs)
    for (build, jobs) in pairs {
      #expect(try catalog.build(id: build.id) == build)
      #expect(
        try catalog.build(
          organizationSlug: build.organizationSlug, pipelineSlug: build.pipelineSlug, number: build.number)
          == build)
      #expect(try catalog.jobs(buildID: build.id) == jobs)
      for job in jobs { #expect(try catalog.job(id: job.id) == job) }
    }
    #expect(try catalog.build(id: "empty-json")?.json == [])
    #expect(try catalog.build(id: "nope") == nil)
    #expect(try catalog.job(id: "nope") == nil)
    #expect(try catalog.jobs(buildID: "nope") == [])
  }

  @Test func jobsTakeTheirBuildsID() throws {
    let catalog = try Catalog.inMemory(logger: testLogger)
    let b = build(1)
    var stray = job("j1", build: b)
    stray.buildID = "something else"
    try catalog.upsert(builds: [(b, [stray])])
    #expect(try catalog.job(id: "j1")?.buildID == b.id)
    #expect(try catalog.jobs(buildID: b.id).map(\.id) == ["j1"])
  }

  @Test func listingTimestamps() throws {
    let catalog = try Catalog.inMemory(logger: testLogger)
    #expect(try catalog.listingFetchedAt("pipelines:acme") == nil)
    try catalog.setListingFetched("pipelines:acme", at: 1_700_000_000)
    try catalog.setListingFetched("builds:acme/web", at: 1_700_000_500)
    #expect(try catalog.listingFetchedAt("pipelines:acme") == 1_700_000_000)
    #expect(try catalog.listingFetchedAt("builds:acme/web") == 1_700_000_500)
    try catalog.setListingFetched("pipelines:acme", at: 1_800_000_000)
    #expect(try catalog.listingFetchedAt("pipelines:acme") == 1_800_000_000)
    #expect(try catalog.listingFetchedAt("builds:acme/web") == 1_700_000_500)
    for key in oddStrings {
      try catalog.setListingFetched("odd:" + key, at: 42)
      #expect(try catalog.listingFetchedAt("odd:" + key) == 42)
    }
    #expect(try catalog.listingFetchedAt("odd:embedded") == nil)
  }
}
