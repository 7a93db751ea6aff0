import Catalog
import TestSupport
import Testing

/// What `bklogfs sync` keeps of how far it went through each pipeline, written with the builds it
/// fetched so that a sync stopped at any point never claims a build it did not store.
@Suite struct SyncProgressTests {
  @Test func progressIsKeptByPipelineWithTheBuildsOfItsPage() throws {
    try withTemporaryDirectory { directory in
      let path = directory + "/catalog.sqlite"
      do {
        let catalog = try Catalog(path: path, logger: testLogger)
        #expect(try catalog.syncProgress(pipelineID: "p1") == nil)
        let progress = CatalogSyncProgress(pipelineID: "p1", newest: 900, oldest: 100, reachedEnd: false)
        try catalog.upsert(
          builds: [(build(1), []), (build(2, state: "running", finished: false), [])],
          listingsFetched: ["build:acme/web/2"], at: 1_234, syncProgress: progress)
        try catalog.setSyncProgress(
          CatalogSyncProgress(pipelineID: "empty", newest: nil, oldest: nil, reachedEnd: true))
      }
      let reopened = try Catalog(path: path, logger: testLogger)
      #expect(
        try reopened.syncProgress(pipelineID: "p1")
          == CatalogSyncProgress(pipelineID: "p1", newest: 900, oldest: 100, reachedEnd: false))
      #expect(
        try reopened.syncProgress(pipelineID: "empty")
          == CatalogSyncProgress(pipelineID: "empty", newest: nil, oldest: nil, reachedEnd: true))
      #expect(try reopened.build(organizationSlug: "acme", pipelineSlug: "web", number: 2) != nil)
      #expect(try reopened.listingFetchedAt("build:acme/web/2") == 1_234)
    }
  }

  @Test func unfinishedBuildsAreFoundByCreationTime() throws {
    let catalog = try Catalog.inMemory(logger: testLogger)
    // build(n) is created at 1_700_000_000 + n.
    try catalog.upsert(builds: [
      (build(1), []), (build(2, finished: false), []), (build(5, finished: false), []),
      (build(3, pipeline: "other", finished: false), []),
    ])
    #expect(
      try catalog.unfinishedBuildNumbers(organizationSlug: "acme", pipelineSlug: "web", createdBefore: 1_700_000_005)
        == [2])
    #expect(
      try catalog.unfinishedBuildNumbers(organizationSlug: "acme", pipelineSlug: "web", createdBefore: 1_800_000_000)
        == [2, 5])
  }
}
