import Catalog
import Foundation
import Synchronization
import TestSupport
import Testing

@Suite struct ConcurrencyTests {
  /// Eight plain threads, as FUSE workers would be, read and write for a bounded time over two `Catalog`s on one
  /// file (as two processes would): nothing crashes, no error (such as "database is locked") surfaces, and every
  /// write is there afterwards.
  @Test func eightThreadsReadAndWrite() throws {
    try withTemporaryDirectory { directory in
      let path = directory + "/catalog.sqlite"
      let catalogs = [try Catalog(path: path, logger: testLogger), try Catalog(path: path, logger: testLogger)]
      try catalogs[0].upsert(organizations: [organization(1, slug: "acme")])
      let errors = Mutex<[String]>([])
      let written = Mutex<[Int: Int]>([:])
      let reads = Atomic<Int>(0)
      let deadline = ContinuousClock.now + .seconds(2)
      let group = DispatchGroup()
      for thread in 0..<8 {
        group.enter()
        let catalog = catalogs[thread % 2]
        let worker = Thread {
          defer { group.leave() }
          var iteration = 0
          do {
            while ContinuousClock.now < deadline {
              let number = thread * 1_000_000 + iteration
              let b = build(number, pipeline: "web")
              let jobs = (0..<3).map { job("job-\(number)-\($0)", build: b) }
              try catalog.upsert(builds: [(b, jobs)])
              try catalog.setLogSize(jobID: jobs[0].id, size: Int64(iteration))
              try catalog.setListingFetched("builds:acme/web:\(thread)", at: Int64(iteration))
              try catalog.upsert(organizations: [organization(thread, slug: "org-\(thread)")])
              let listed = try catalog.builds(organizationSlug: "acme", pipelineSlug: "web", limit: 20, before: nil)
              if try catalog.build(id: b.id) != b { throw CatalogError("build \(number) not read back") }
              if try catalog.jobs(buildID: b.id).count != 3 { throw CatalogError("jobs of \(number) not read back") }
              if try catalog.job(id: jobs[0].id)?.logSize != Int64(iteration) {
                throw CatalogError("log size of \(number) not read back")
              }
              _ = try catalog.organization(slug: "acme")
              _ = listed
              reads.add(4, ordering: .relaxed)
              iteration += 1
            }
          } catch {
            errors.withLock { $0.append("thread \(thread): \(error)") }
          }
          written.withLock { $0[thread] = iteration }
        }
        worker.start()
      }
      group.wait()
      let failures = errors.withLock { $0 }
      #expect(failures.isEmpty, "\(failures)")
      let counts = written.withLock { $0 }
      print(
        "Catalog: 8 threads on 2 connections wrote \(counts.values.reduce(0, +)) builds, \(reads.load(ordering: .relaxed)) reads"
      )
      for (thread, count) in counts {
        #expect(count > 0)
        let catalog = catalogs[(thread + 1) % 2]  // read through the other connection
        #expect(
          try catalog.build(organizationSlug: "acme", pipelineSlug: "web", number: thread * 1_000_000 + count - 1)
            != nil)
        #expect(try catalog.listingFetchedAt("builds:acme/web:\(thread)") == Int64(count - 1))
      }
    }
  }

  /// Lookups go to read-only connections, so they keep being answered while a large batch is written.
  @Test func lookupsDoNotWaitForABatch() throws {
    try withTemporaryDirectory { directory in
      let catalog = try Catalog(path: directory + "/catalog.sqlite", logger: testLogger)
      let known = build(1)
      try catalog.upsert(builds: [(known, [job("known", build: known)])])
      let pairs = (2...5_001).map { number -> (build: CatalogBuild, jobs: [CatalogJob]) in
        let b = build(number)
        return (b, (0..<5).map { job("job-\(number)-\($0)", build: b) })
      }
      let done = Atomic<Bool>(false)
      let writeError = Mutex<String?>(nil)
      let group = DispatchGroup()
      group.enter()
      Thread {
        defer {
          done.store(true, ordering: .releasing)
          group.leave()
        }
        do { try catalog.upsert(builds: pairs) } catch { writeError.withLock { $0 = "\(error)" } }
      }.start()
      let clock = ContinuousClock()
      var lookups = 0
      var slowest = Duration.zero
      var sawPartialBatch = false
      while !done.load(ordering: .acquiring) {
        let started = clock.now
        let found = try catalog.build(id: known.id)
        let latest = try catalog.builds(organizationSlug: "acme", pipelineSlug: "web", limit: 1, before: nil)
        slowest = max(slowest, clock.now - started)
        #expect(found == known)
        // A reader sees either none of the batch or all of it.
        if let number = latest.first?.number, number != 1 && number != 5_001 { sawPartialBatch = true }
        lookups += 1
      }
      group.wait()
      #expect(writeError.withLock { $0 } == nil)
      #expect(!sawPartialBatch)
      #expect(lookups > 0)
      #expect(
        try catalog.builds(organizationSlug: "acme", pipelineSlug: "web", limit: 1, before: nil).first?.number == 5_001)
      print("Catalog: \(lookups) lookups answered during a 5,000-build write; the slowest took \(slowest)")
    }
  }
}
