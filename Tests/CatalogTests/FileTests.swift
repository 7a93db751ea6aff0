import Catalog
import Foundation
import Glibc
import TestSupport
import Testing

@Suite struct FileTests {
  @Test func persistsAcrossReopen() throws {
    try withTemporaryDirectory { directory in
      let path = directory + "/catalog.sqlite"
      let b = build(42)
      let jobs = [job("j1", build: b, retried: true), job("j2", build: b)]
      do {
        let catalog = try Catalog(path: path, logger: testLogger)
        try catalog.upsert(organizations: [organization(1, slug: "acme")])
        try catalog.upsert(pipelines: [pipeline(1, organization: "acme", slug: "web")])
        try catalog.upsert(builds: [(b, jobs)])
        try catalog.setLogSize(jobID: "j2", size: 777)
        try catalog.setListingFetched("builds:acme/web", at: 1_700_000_000)
      }
      let catalog = try Catalog(path: path, logger: testLogger)
      #expect(catalog.path == path)
      #expect(try catalog.organization(slug: "acme") == organization(1, slug: "acme"))
      #expect(
        try catalog.pipeline(organizationSlug: "acme", slug: "web") == pipeline(1, organization: "acme", slug: "web"))
      #expect(try catalog.build(organizationSlug: "acme", pipelineSlug: "web", number: 42) == b)
      var sized = jobs[1]
      sized.logSize = 777
      #expect(try catalog.jobs(buildID: b.id) == [jobs[0], sized])
      #expect(try catalog.listingFetchedAt("builds:acme/web") == 1_700_000_000)
    }
  }

  @Test func createsPrivateDirectoriesAndFiles() throws {
    try withTemporaryDirectory { directory in
      let path = directory + "/a/b/catalog.sqlite"
      let catalog = try Catalog(path: path, logger: testLogger)
      try catalog.upsert(organizations: [organization(1)])
      #expect(try permissions(directory + "/a") == 0o700)
      #expect(try permissions(directory + "/a/b") == 0o700)
      #expect(try permissions(path) == 0o600)
      // SQLite gives its companion files the database file's permissions.
      #expect(try permissions(path + "-wal") == 0o600)
      #expect(try permissions(path + "-shm") == 0o600)
    }
  }

  @Test func tightensAnExistingFile() throws {
    try withTemporaryDirectory { directory in
      let path = directory + "/catalog.sqlite"
      #expect(FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o644]))
      #expect(try permissions(path) == 0o644)
      _ = try Catalog(path: path, logger: testLogger)
      #expect(try permissions(path) == 0o600)
    }
  }

  @Test func refusesANewerSchema() throws {
    try withTemporaryDirectory { directory in
      let path = directory + "/catalog.sqlite"
      do { _ = try Catalog(path: path, logger: testLogger) }
      #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
      // user_version is the big-endian 32-bit integer at offset 60 of the database header.
      try patch(path, at: 60, with: [0, 0, 0, 99])
      let error = #expect(throws: CatalogError.self) { try Catalog(path: path, logger: testLogger) }
      #expect(error?.description.contains(path) == true)
      #expect(error?.description.contains("schema version 99, newer than this bklogfs understands") == true)
      // Refused, not downgraded.
      let header = try Array(Data(contentsOf: URL(fileURLWithPath: path)).prefix(64))
      #expect(Array(header[60..<64]) == [0, 0, 0, 99])
    }
  }

  @Test func refusesAFileThatIsNotADatabase() throws {
    try withTemporaryDirectory { directory in
      let path = directory + "/catalog.sqlite"
      let text = String(repeating: "This is a shopping list, not a database.\n", count: 200)
      try Data(text.utf8).write(to: URL(fileURLWithPath: path))
      let error = #expect(throws: CatalogError.self) { try Catalog(path: path, logger: testLogger) }
      let description = error?.description ?? ""
      print("Catalog error for a file that is not a database: \(description)")
      #expect(description.contains(path))
      #expect(description.contains("is not a SQLite database"))
      #expect(!description.contains("shopping"))
      // Left alone.
      #expect(try String(contentsOfFile: path, encoding: .utf8) == text)
    }
  }

  @Test func refusesAnotherProgramsDatabase() throws {
    try withTemporaryDirectory { directory in
      let path = directory + "/catalog.sqlite"
      do { _ = try Catalog(path: path, logger: testLogger) }
      // application_id is the big-endian 32-bit integer at offset 68 of the database header.
      try patch(path, at: 68, with: [0x12, 0x34, 0x56, 0x78])
      let error = #expect(throws: CatalogError.self) { try Catalog(path: path, logger: testLogger) }
      #expect(error?.description.contains("not a bklogfs catalog") == true)
      #expect(error?.description.contains(path) == true)
    }
  }

  @Test func refusesADirectory() throws {
    try withTemporaryDirectory { directory in
      let error = #expect(throws: CatalogError.self) { try Catalog(path: directory, logger: testLogger) }
      #expect(error?.description.contains(directory) == true)
      let parentIsFile = directory + "/file"
      #expect(FileManager.default.createFile(atPath: parentIsFile, contents: Data()))
      let nested = #expect(throws: CatalogError.self) {
        try Catalog(path: parentIsFile + "/catalog.sqlite", logger: testLogger)
      }
      #expect(nested?.description.contains("not a directory") == true)
    }
  }

  @Test func aCatalogNeverHoldsTheEnvironmentsSecrets() throws {
    // The catalog has no field for a token; check that what it writes is only what it was given.
    try withTemporaryDirectory { directory in
      let path = directory + "/catalog.sqlite"
      do {
        let catalog = try Catalog(path: path, logger: testLogger)
        try catalog.upsert(builds: [(build(1), [])])
      }
      let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
      #expect(bytes.range(of: Data("Bearer".utf8)) == nil)
      #expect(bytes.range(of: Data("build-acme-web-1".utf8)) != nil)
    }
  }
}

@Suite struct ExportLocationTests {
  @Test func exportLocationsRoundTripAndPersist() throws {
    try withTemporaryDirectory { directory in
      let path = directory + "/catalog.sqlite"
      do {
        let catalog = try Catalog(path: path, logger: testLogger)
        #expect(try catalog.exportLocation(buildID: "b1") == nil)
        try catalog.setExportLocation(buildID: "b1", location: "org=o/date=2024-01-02/pipeline=p/build=b1/")
        try catalog.setExportLocation(buildID: "b1", location: "org=o/date=2024-01-03/pipeline=p/build=b1/")
      }
      let catalog = try Catalog(path: path, logger: testLogger)
      #expect(try catalog.exportLocation(buildID: "b1") == "org=o/date=2024-01-03/pipeline=p/build=b1/")
    }
  }

  /// A catalog written by the first version of the schema is brought to the current one in place.
  @Test func aVersionOneCatalogIsUpgradedKeepingItsNames() throws {
    try withTemporaryDirectory { directory in
      let path = directory + "/catalog.sqlite"
      // As an older bklogfs left it.
      try makeOldCatalog(
        path, version: 1,
        """
        INSERT INTO organizations VALUES ('org-uuid-1', 'acme', 'Organization 1');
        """)
      let catalog = try Catalog(path: path, logger: testLogger)
      #expect(try catalog.organization(slug: "acme") == organization(1, slug: "acme"))
      try catalog.setExportLocation(buildID: "b", location: "x/")
      #expect(try catalog.exportLocation(buildID: "b") == "x/")
      try catalog.upsert(pipelines: [pipeline(1, slug: "web")])
      try catalog.upsert(builds: [(build(1), [])])
      #expect(try catalog.newestBuildTimes(organizationSlug: "acme").map(\.time) == [1_700_000_100])
      try catalog.setExportScanThrough(pipelineID: "p", "date=2024-05-01")
      #expect(try catalog.exportScanThrough(pipelineID: "p") == "date=2024-05-01")
      let progress = CatalogSyncProgress(pipelineID: "p", newest: 2, oldest: 1, reachedEnd: true)
      try catalog.setSyncProgress(progress)
      #expect(try catalog.syncProgress(pipelineID: "p") == progress)
    }
  }

  /// How far each pipeline's scan of the build exports went, and the folders known of a pipeline.
  @Test func exportScansAreKeptByPipeline() throws {
    try withTemporaryDirectory { directory in
      let path = directory + "/catalog.sqlite"
      do {
        let catalog = try Catalog(path: path, logger: testLogger)
        #expect(try catalog.exportScanThrough(pipelineID: "p1") == nil)
        try catalog.setExportScanThrough(pipelineID: "p1", "date=2024-05-01")
        try catalog.setExportScanThrough(pipelineID: "p1", "date=2024-06-02")
        try catalog.setExportScanThrough(pipelineID: "p2", "date=2023-01-01")
        try catalog.setExportLocation(buildID: "b1", location: "org=o/date=2024-05-01/pipeline=p1/build=b1/")
        try catalog.setExportLocation(buildID: "b2", location: "org=o/date=2024-05-01/pipeline=p2/build=b2/")
      }
      let catalog = try Catalog(path: path, logger: testLogger)
      #expect(try catalog.exportScanThrough(pipelineID: "p1") == "date=2024-06-02")
      #expect(try catalog.exportScanThrough(pipelineID: "p2") == "date=2023-01-01")
      #expect(
        try catalog.exportLocations(containing: "/pipeline=p1/") == ["org=o/date=2024-05-01/pipeline=p1/build=b1/"])
    }
  }
}
