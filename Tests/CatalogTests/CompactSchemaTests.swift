import Catalog
import Foundation
import TestSupport
import Testing

/// The tables of schema version 1 through 5, as earlier versions of bklogfs wrote them.
private let oldSchemas = [
  """
  CREATE TABLE organizations (id TEXT NOT NULL PRIMARY KEY, slug TEXT NOT NULL, name TEXT NOT NULL);
  CREATE UNIQUE INDEX organizations_by_slug ON organizations (slug);
  CREATE TABLE pipelines (
    id TEXT NOT NULL PRIMARY KEY, organization_slug TEXT NOT NULL, slug TEXT NOT NULL, name TEXT NOT NULL);
  CREATE UNIQUE INDEX pipelines_by_slug ON pipelines (organization_slug, slug);
  CREATE TABLE builds (
    id TEXT NOT NULL PRIMARY KEY, organization_slug TEXT NOT NULL, pipeline_slug TEXT NOT NULL,
    number INTEGER NOT NULL, state TEXT NOT NULL, created_at INTEGER, finished_at INTEGER,
    is_finished INTEGER NOT NULL, json BLOB NOT NULL);
  CREATE UNIQUE INDEX builds_by_number ON builds (organization_slug, pipeline_slug, number);
  CREATE TABLE jobs (
    id TEXT NOT NULL PRIMARY KEY, build_id TEXT NOT NULL, position INTEGER NOT NULL, type TEXT NOT NULL, name TEXT,
    step_key TEXT, state TEXT, parallel_group_index INTEGER, parallel_group_total INTEGER, retried INTEGER NOT NULL,
    retried_in_job_id TEXT, retries_count INTEGER, started_at INTEGER, finished_at INTEGER, log_size INTEGER);
  CREATE INDEX jobs_by_build ON jobs (build_id, position);
  CREATE TABLE listings (key TEXT NOT NULL PRIMARY KEY, fetched_at INTEGER NOT NULL);
  """,
  "CREATE TABLE build_exports (build_id TEXT NOT NULL PRIMARY KEY, location TEXT NOT NULL);",
  "CREATE INDEX builds_by_time ON builds (organization_slug, pipeline_slug, coalesce(finished_at, created_at));",
  "CREATE TABLE export_scans (pipeline_id TEXT NOT NULL PRIMARY KEY, through TEXT NOT NULL);",
  """
  CREATE TABLE sync_progress (
    pipeline_id TEXT NOT NULL PRIMARY KEY, newest INTEGER, oldest INTEGER, reached_end INTEGER NOT NULL);
  """,
]

/// Runs a Python script (with `sqlite3`) with `arguments`; fails the test when it fails.
func python(_ script: String, _ arguments: [String]) throws {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
  process.arguments = ["python3", "-c", script] + arguments
  try process.run()
  process.waitUntilExit()
  try #require(process.terminationStatus == 0, "python3 failed")
}

/// Writes a catalog of schema `version` as an older bklogfs would have, with the rows `inserts` adds.
func makeOldCatalog(_ path: String, version: Int, _ inserts: String) throws {
  let schema = oldSchemas.prefix(version).joined(separator: "\n")
  try python(
    """
    import sqlite3, sys
    c = sqlite3.connect(sys.argv[1])
    c.executescript(sys.argv[2])
    c.executescript(sys.argv[3])
    c.execute('PRAGMA user_version = ' + sys.argv[4])
    c.execute('PRAGMA application_id = 1651207271')
    c.commit()
    """, [path, schema, inserts, String(version)])
}

/// JSON shaped like a build's from the API: fields, jobs that repeat their keys and the build's URL, the pipeline.
func buildJSON(number: Int, jobIDs: [String], pipeline: String = "web") -> [UInt8] {
  let url = "https://api.buildkite.com/v2/organizations/acme/pipelines/\(pipeline)/builds/\(number)"
  let jobs = jobIDs.map { id in
    """
    {"id":"\(id)","type":"script","name":"Test \(id.prefix(4))","state":"passed","web_url":"\(url)#\(id)",\
    "log_url":"\(url)/jobs/\(id)/log","raw_log_url":"\(url)/jobs/\(id)/log.txt","agent_query_rules":["queue=default"],\
    "created_at":"2024-05-01T09:00:00.000Z","started_at":"2024-05-01T09:00:05.000Z","exit_status":0}
    """
  }
  return Array(
    """
    {"id":"b-\(number)","number":\(number),"state":"passed","url":"\(url)","message":"Change \(number)",\
    "jobs":[\(jobs.joined(separator: ","))],"pipeline":{"slug":"\(pipeline)","name":"Web",\
    "repository":"git@github.com:acme/\(pipeline).git","default_branch":"main","visibility":"private"}}
    """.utf8)
}

func uuid(_ n: Int) -> String {
  String(format: "%08x-%04x-4%03x-8%03x-%012x", n * 2_654_435_761 % 0xffff_ffff, n % 0xffff, n % 0xfff, n % 0xfff, n)
}

@Suite struct CompactSchemaTests {
  /// Canonical UUIDs are held as 16 bytes and come back as the same text; any other id stays as given.
  @Test func idsOfEveryKindRoundTrip() throws {
    let catalog = try Catalog.inMemory(logger: testLogger)
    let ids = [
      uuid(1), uuid(2).uppercased(), "not-a-uuid", "", "nl\nid", uuid(3) + " ", "0000000g" + uuid(4).dropFirst(8),
    ]
    var b = build(7, id: uuid(100))
    b.json = buildJSON(number: 7, jobIDs: ids)
    var jobs = ids.map { job($0, build: b) }
    jobs[0].retried = true
    jobs[0].retriedInJobID = uuid(1_000)
    jobs[1].retriedInJobID = "NOT-\(uuid(9))"
    // Types and states are coded when known, kept as text otherwise.
    jobs[2].type = "Script"
    jobs[3].state = "weird"
    jobs[4].state = nil
    (jobs[5].type, jobs[5].state) = ("waiter", "broken")
    (jobs[6].type, jobs[6].state) = ("0", "1")
    try catalog.upsert(builds: [(b, jobs)])
    #expect(try catalog.build(id: uuid(100)) == b)
    #expect(try catalog.build(id: uuid(100).uppercased()) == nil)
    #expect(try catalog.build(organizationSlug: "acme", pipelineSlug: "web", number: 7) == b)
    #expect(try catalog.jobs(buildID: uuid(100)) == jobs)
    for job in jobs { #expect(try catalog.job(id: job.id) == job) }
    #expect(try catalog.job(id: uuid(1).uppercased()) == nil)
    try catalog.setLogSize(jobID: uuid(1), size: 12)
    #expect(try catalog.job(id: uuid(1))?.logSize == 12)
    #expect(try catalog.job(id: uuid(2).uppercased())?.logSize == nil)
  }

  /// Builds' JSON is deflated with its pipeline's dictionary and read back byte for byte; the views show the
  /// rows as version 5 did.
  @Test func jsonIsDeflatedPerPipelineAndTheViewsReadLikeVersionFive() throws {
    try withTemporaryDirectory { directory in
      let path = directory + "/catalog.sqlite"
      var stored: [CatalogBuild] = []
      do {
        let catalog = try Catalog(path: path, logger: testLogger)
        for pipeline in ["web", "api"] {
          for number in 1...20 {
            var b = build(number, pipeline: pipeline, id: uuid(number + (pipeline == "web" ? 0 : 500)))
            b.json = buildJSON(number: number, jobIDs: (0..<10).map { uuid(number * 100 + $0) }, pipeline: pipeline)
            try catalog.upsert(builds: [
              (b, (0..<10).map { job(uuid(number * 100 + $0 + (pipeline == "web" ? 0 : 50_000)), build: b) })
            ])
            stored.append(b)
          }
        }
        // Empty JSON is stored as it is.
        try catalog.upsert(builds: [(build(99, pipeline: "empty", id: "x"), [])])
      }
      let catalog = try Catalog(path: path, logger: testLogger)
      for b in stored {
        #expect(try catalog.build(organizationSlug: "acme", pipelineSlug: b.pipelineSlug, number: b.number) == b)
      }
      #expect(
        try catalog.builds(organizationSlug: "acme", pipelineSlug: "api", limit: 3, before: nil).map(\.json)
          == stored.suffix(3).reversed().map(\.json))
      try python(
        """
        import sqlite3, sys
        c = sqlite3.connect(sys.argv[1])
        raw, encoding = c.execute('SELECT sum(length(json)), min(json_encoding) FROM build_records WHERE number < 99').fetchone()
        assert encoding == 1, encoding
        size = sum(len(j) for (j,) in c.execute("SELECT json FROM builds WHERE number < 99"))
        assert raw == size, (raw, size)
        assert raw * 5 < int(sys.argv[2]), (raw, sys.argv[2])
        ids = [i for (i,) in c.execute("SELECT id FROM builds WHERE pipeline_slug = 'web' AND number = 3")]
        assert ids == [sys.argv[3]], ids
        jobs = c.execute("SELECT count(*), min(build_id), max(build_id) FROM jobs WHERE build_id = ?", (sys.argv[3],)).fetchone()
        assert jobs == (10, sys.argv[3], sys.argv[3]), jobs
        assert set(c.execute("SELECT DISTINCT type, state FROM jobs")) == {('script', 'passed')}
        assert c.execute("SELECT DISTINCT typeof(type), typeof(state) FROM job_records").fetchall() == [('integer', 'integer')]
        """, [path, String(stored.reduce(0) { $0 + $1.json.count }), uuid(3)])
    }
  }

  /// A version 5 catalog is upgraded in place: builds, jobs (their order, sizes and retries), and the rest kept.
  @Test func aVersionFiveCatalogIsUpgradedKeepingItsBuildsAndJobs() throws {
    try withTemporaryDirectory { directory in
      let path = directory + "/catalog.sqlite"
      let json = String(decoding: buildJSON(number: 5, jobIDs: [uuid(1), uuid(2)]), as: UTF8.self)
      try makeOldCatalog(
        path, version: 5,
        """
        INSERT INTO organizations VALUES ('org-uuid-1', 'acme', 'Organization 1');
        INSERT INTO pipelines VALUES ('pipeline-uuid-1', 'acme', 'web', 'P 1');
        INSERT INTO builds VALUES ('\(uuid(50))', 'acme', 'web', 5, 'passed', 1700000005, 1700000100, 1, '\(json)');
        INSERT INTO builds VALUES ('odd build id', 'acme', 'web', 6, 'running', 1700000006, NULL, 0, x'');
        INSERT INTO jobs VALUES ('\(uuid(2))', '\(uuid(50))', 0, 'script', 'b', 'kb', 'passed', NULL, NULL, 0, NULL,
          1, 1700000010, 1700000090, 77);
        INSERT INTO jobs VALUES ('lint', '\(uuid(50))', 0, 'script', 'a', NULL, 'failed', 0, 2, 1, '\(uuid(2))',
          NULL, NULL, NULL, NULL);
        INSERT INTO jobs VALUES ('\(uuid(3))', 'odd build id', 0, 'waiter', NULL, NULL, NULL, NULL, NULL, 0, NULL,
          NULL, NULL, NULL, NULL);
        INSERT INTO jobs VALUES ('\(uuid(4))', 'no such build', 0, 'script', NULL, NULL, NULL, NULL, NULL, 0, NULL,
          NULL, NULL, NULL, NULL);
        INSERT INTO listings VALUES ('builds:acme/web', 1700000200);
        INSERT INTO sync_progress VALUES ('pipeline-uuid-1', 1700000006, 1700000005, 1);
        """)
      let catalog = try Catalog(path: path, logger: testLogger)
      #expect(Catalog.schemaVersion == 6)
      let five = CatalogBuild(
        id: uuid(50), organizationSlug: "acme", pipelineSlug: "web", number: 5, state: "passed",
        createdAt: 1_700_000_005, finishedAt: 1_700_000_100, isFinished: true, json: Array(json.utf8))
      #expect(try catalog.build(organizationSlug: "acme", pipelineSlug: "web", number: 5) == five)
      #expect(try catalog.build(id: "odd build id")?.isFinished == false)
      #expect(
        try catalog.jobs(buildID: uuid(50)) == [
          CatalogJob(
            id: uuid(2), buildID: uuid(50), type: "script", name: "b", stepKey: "kb", state: "passed",
            retriesCount: 1, startedAt: 1_700_000_010, finishedAt: 1_700_000_090, logSize: 77),
          CatalogJob(
            id: "lint", buildID: uuid(50), type: "script", name: "a", state: "failed", parallelGroupIndex: 0,
            parallelGroupTotal: 2, retried: true, retriedInJobID: uuid(2)),
        ])
      #expect(try catalog.jobs(buildID: "odd build id").map(\.id) == [uuid(3)])
      #expect(try catalog.job(id: uuid(4)) == nil)
      #expect(try catalog.listingFetchedAt("builds:acme/web") == 1_700_000_200)
      #expect(try catalog.syncProgress(pipelineID: "pipeline-uuid-1")?.reachedEnd == true)
      #expect(try catalog.newestBuildTimes(organizationSlug: "acme").map(\.time) == [1_700_000_100])
      #expect(
        try catalog.unfinishedBuildNumbers(organizationSlug: "acme", pipelineSlug: "web", createdBefore: .max) == [6])
      // Stored again, the build keeps its jobs and takes the new copy's.
      try catalog.upsert(builds: [(five, [job("new", build: five)])])
      #expect(try catalog.jobs(buildID: uuid(50)).map(\.id) == [uuid(2), "lint", "new"])
      try python(
        """
        import sqlite3, sys
        c = sqlite3.connect(sys.argv[1])
        names = {n for (n,) in c.execute("SELECT name FROM sqlite_schema")}
        assert 'builds_v5' not in names and 'jobs_v5' not in names, names
        """, [path])
    }
  }
}

@Suite struct GraphQLIDTests {
  /// GraphQL ids are stored unpacked from base64 and come back as the API sent them, whatever their form.
  @Test func graphQLIDsOfEveryFormRoundTrip() throws {
    try withTemporaryDirectory { directory in
      let path = directory + "/catalog.sqlite"
      func encoded(_ text: String) -> String { Data(text.utf8).base64EncodedString() }
      let forms = [
        #""graphql_id":"\#(encoded("Job---\(uuid(1))"))""#, #""graphql_id": "\#(encoded("Build---\(uuid(2))"))""#,
        #""graphql_id":"QQ""#, #""graphql_id":"QR==""#, #""graphql_id":"""#, #""graphql_id":"\#(encoded("a\"b"))""#,
        #""graphql_id":"\#(encoded("tab\there"))""#, #""graphql_id":"not base64!""#, #""graphql_id":null"#,
        #""graphql_id":"\#(encoded("Job---\(uuid(1))"))"#,
      ]
      let builds = forms.enumerated().map { number, form in
        var b = build(number + 1, id: uuid(number + 1))
        b.json = Array("{\"id\":\"\(uuid(number + 1))\",\(form),\"jobs\":[{\(form)}],\"n\":\"\(number)\"}".utf8)
        return b
      }
      var withNUL = build(100, id: uuid(100))
      withNUL.json = Array(#"{"graphql_id":"\#(encoded("Job---x"))","x":"#.utf8) + [0] + Array("}".utf8)
      do {
        let catalog = try Catalog(path: path, logger: testLogger)
        for b in builds + [withNUL] { try catalog.upsert(builds: [(b, [])]) }
      }
      let catalog = try Catalog(path: path, logger: testLogger)
      for b in builds + [withNUL] { #expect(try catalog.build(id: b.id) == b) }
      try python(
        """
        import sqlite3, sys
        c = sqlite3.connect(sys.argv[1])
        assert c.execute('SELECT json_encoding FROM build_records WHERE number = 1').fetchone() == (2,)
        """, [path])
    }
  }
}
