public import BuildkiteAPI
public import Catalog
import LogFS
public import Logging
import ObjectStore

/// A build as the catalog keeps it, with its jobs, as the API gave it under `organization`/`pipeline`;
/// a job the API sent twice is logged (the catalog keeps the last).
public func catalogRecord(of build: Build, organization: String, pipeline: String, logger: Logger) -> (
  build: CatalogBuild, jobs: [CatalogJob]
) {
  warnOfDuplicates(build.jobs.map(\.id), "jobs", in: "/\(organization)/\(pipeline)/\(build.number)", logger: logger)
  let catalogBuild = CatalogBuild(
    id: build.id, organizationSlug: organization, pipelineSlug: pipeline, number: build.number, state: build.state,
    createdAt: build.createdAt.map { Int64($0) }, finishedAt: build.finishedAt.map { Int64($0) },
    isFinished: build.isFinished, json: build.raw)
  let jobs = build.jobs.map {
    CatalogJob(
      id: $0.id, buildID: build.id, type: $0.type, name: $0.name, stepKey: $0.stepKey, state: $0.state,
      parallelGroupIndex: $0.parallelGroupIndex, parallelGroupTotal: $0.parallelGroupTotal, retried: $0.retried,
      retriedInJobID: $0.retriedInJobID, retriesCount: $0.retriesCount, startedAt: $0.startedAt.map { Int64($0) },
      finishedAt: $0.finishedAt.map { Int64($0) })
  }
  return (catalogBuild, jobs)
}

extension Catalog {
  /// Stores a page of a pipeline's builds listing, each with its jobs, in one transaction. A running build's own
  /// record is then as fresh as the listing (`time`), so a mount does not fetch it again within its TTL; `progress`,
  /// when given, is how far a sync has gone with this page stored.
  public func storeListed(
    _ builds: [Build], organization: String, pipeline: String, at time: Int64,
    syncProgress progress: CatalogSyncProgress? = nil, logger: Logger
  ) throws(CatalogError) {
    warnOfDuplicates(builds.map { String($0.number) }, "builds", in: "/\(organization)/\(pipeline)", logger: logger)
    try upsert(
      builds: builds.map { catalogRecord(of: $0, organization: organization, pipeline: pipeline, logger: logger) },
      listingsFetched: builds.filter { !$0.isFinished }.map { buildListingKey(organization, pipeline, $0.number) },
      at: time, syncProgress: progress)
  }
}

/// The catalog keeps one organization per slug, one pipeline per slug, one build per number and
/// one job per ID (the last the API sent): a listing with two of one name loses one, and says so.
func warnOfDuplicates(_ names: [String], _ what: String, in place: String, logger: Logger) {
  var counts: [ExactName: Int] = [:]
  for name in names { counts[ExactName(name), default: 0] += 1 }
  for (name, count) in counts where count > 1 {
    logger.warning(
      "left out \(count - 1) of \(count) \(what) in \(escapedForLog(place)) named \(escapedForLog(name.string)): the API sent one name twice, the last is shown"
    )
  }
}
