import Catalog
import TestSupport
import Testing

@Suite struct BuildTests {
  @Test func replacingAFinishedBuildKeepsJobsTheNewCopyLacks() throws {
    let catalog = try Catalog.inMemory(logger: testLogger)
    let first = build(7)
    let attempt1 = job("a1", build: first, name: "test", retried: true)
    let attempt2 = job("a2", build: first, name: "test")
    let other = job("c", build: first, name: "lint")
    try catalog.upsert(builds: [(first, [attempt1, attempt2, other])])

    // The API answered without retried jobs, and the build's state changed (say, a note in its JSON).
    var second = first
    second.state = "failed"
    second.json = Array("{\"number\":7,\"state\":\"failed\"}".utf8)
    var attempt2Updated = attempt2
    attempt2Updated.state = "failed"
    try catalog.upsert(builds: [(second, [attempt2Updated, other])])

    #expect(try catalog.build(id: first.id) == second)
    #expect(try catalog.jobs(buildID: first.id) == [attempt1, attempt2Updated, other])

    // A later retry adds a job; everything learned before stays.
    var attempt3 = job("a3", build: first, name: "test")
    attempt3.state = "running"
    try catalog.upsert(builds: [(second, [attempt2Updated, attempt3, other])])
    #expect(try catalog.jobs(buildID: first.id).map(\.id) == ["a1", "a2", "a3", "c"])
  }

  @Test func runningBuildsKeepJobsToo() throws {
    let catalog = try Catalog.inMemory(logger: testLogger)
    let running = build(8, state: "running", finished: false)
    try catalog.upsert(builds: [(running, [job("x", build: running), job("y", build: running)])])
    try catalog.upsert(builds: [(running, [job("y", build: running)])])
    #expect(try catalog.jobs(buildID: running.id).map(\.id) == ["x", "y"])
    var finished = running
    finished.state = "passed"
    finished.isFinished = true
    finished.finishedAt = 1_700_000_500
    try catalog.upsert(builds: [(finished, [])])
    #expect(try catalog.build(id: running.id) == finished)
    #expect(try catalog.jobs(buildID: running.id).map(\.id) == ["x", "y"])
  }

  @Test func logSizesSurviveCopiesThatDoNotKnowThem() throws {
    let catalog = try Catalog.inMemory(logger: testLogger)
    let b = build(9)
    let j = job("j", build: b)
    try catalog.upsert(builds: [(b, [j])])
    #expect(try catalog.job(id: "j")?.logSize == nil)
    try catalog.setLogSize(jobID: "j", size: 12_345)
    #expect(try catalog.job(id: "j")?.logSize == 12_345)
    try catalog.upsert(builds: [(b, [j])])
    #expect(try catalog.job(id: "j")?.logSize == 12_345)
    var sized = j
    sized.logSize = 99
    try catalog.upsert(builds: [(b, [sized])])
    #expect(try catalog.job(id: "j")?.logSize == 99)
    // Unknown jobs are ignored.
    try catalog.setLogSize(jobID: "unknown", size: 1)
    #expect(try catalog.job(id: "unknown") == nil)
  }

  @Test func aBuildWithTheSameNumberAndAnotherIDDisplacesTheOld() throws {
    let catalog = try Catalog.inMemory(logger: testLogger)
    let old = build(10, id: "old")
    try catalog.upsert(builds: [(old, [job("old-job", build: old)])])
    let new = build(10, id: "new")
    try catalog.upsert(builds: [(new, [job("new-job", build: new)])])
    #expect(try catalog.build(id: "old") == nil)
    #expect(try catalog.job(id: "old-job") == nil)
    #expect(try catalog.build(organizationSlug: "acme", pipelineSlug: "web", number: 10) == new)
    #expect(try catalog.jobs(buildID: "new").map(\.id) == ["new-job"])
  }

  @Test func buildsOrderingLimitAndBefore() throws {
    let catalog = try Catalog.inMemory(logger: testLogger)
    var pairs: [(build: CatalogBuild, jobs: [CatalogJob])] = []
    for number in (1...20).shuffled() {
      pairs.append((build(number), []))
      pairs.append((build(number * 100, pipeline: "api"), []))
      pairs.append((build(number + 1000, organization: "other"), []))
    }
    try catalog.upsert(builds: pairs)
    func numbers(_ limit: Int, before: Int?, pipeline: String = "web") throws -> [Int] {
      try catalog.builds(organizationSlug: "acme", pipelineSlug: pipeline, limit: limit, before: before).map(\.number)
    }
    #expect(try numbers(5, before: nil) == [20, 19, 18, 17, 16])
    #expect(try numbers(5, before: 16) == [15, 14, 13, 12, 11])
    #expect(try numbers(100, before: 4) == [3, 2, 1])
    #expect(try numbers(100, before: 1) == [])
    #expect(try numbers(0, before: nil) == [])
    #expect(try numbers(-1, before: nil) == [])
    #expect(try numbers(100, before: nil).count == 20)
    #expect(try numbers(2, before: nil, pipeline: "api") == [2000, 1900])
    #expect(try numbers(2, before: 1950, pipeline: "api") == [1900, 1800])
    #expect(try numbers(5, before: nil, pipeline: "none") == [])
    #expect(
      try catalog.builds(organizationSlug: "other", pipelineSlug: "web", limit: 1, before: nil).map(\.number)
        == [1020])
  }

  @Test func aBatchIsOneTransaction() throws {
    let catalog = try Catalog.inMemory(logger: testLogger)
    let b = build(1)
    // Two jobs with the same id in one copy: the second wins, the batch still lands whole.
    try catalog.upsert(builds: [(b, [job("same", build: b, name: "first"), job("same", build: b, name: "second")])])
    #expect(try catalog.jobs(buildID: b.id).map(\.name) == ["second"])
  }

  @Test func largeBatch() throws {
    try withTemporaryDirectory { directory in
      let catalog = try Catalog(path: directory + "/catalog.sqlite", logger: testLogger)
      let json = Array(String(repeating: "{\"k\":\"v\"}", count: 60).utf8)
      var pairs: [(build: CatalogBuild, jobs: [CatalogJob])] = []
      pairs.reserveCapacity(5_000)
      for number in 1...5_000 {
        var b = build(number)
        b.json = json
        let jobs = (0..<5).map { index in
          var j = job("job-\(number)-\(index)", build: b)
          j.parallelGroupIndex = index
          j.parallelGroupTotal = 5
          return j
        }
        pairs.append((b, jobs))
      }
      let clock = ContinuousClock()
      let elapsed = try clock.measure { try catalog.upsert(builds: pairs) }
      print("Catalog: upserted 5,000 builds with 25,000 jobs in one transaction in \(elapsed)")
      let again = try clock.measure { try catalog.upsert(builds: pairs) }
      print("Catalog: upserted the same 5,000 builds again in \(again)")
      #expect(
        try catalog.builds(organizationSlug: "acme", pipelineSlug: "web", limit: 10_000, before: nil).count == 5_000)
      #expect(try catalog.jobs(buildID: pairs[1234].build.id) == pairs[1234].jobs)
      #expect(try catalog.build(organizationSlug: "acme", pipelineSlug: "web", number: 4_321)?.json == json)
    }
  }
}
