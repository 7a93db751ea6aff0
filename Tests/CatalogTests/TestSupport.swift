import Catalog
import Foundation
import Glibc
import Logging
import TestSupport

let testLogger = Logger(label: "bklogfs.catalog.tests")

/// The permission bits of `path`.
func permissions(_ path: String) throws -> mode_t {
  var status = stat()
  guard stat(path, &status) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
  return status.st_mode & 0o777
}

/// Overwrites bytes of a file in place.
func patch(_ path: String, at offset: UInt64, with bytes: [UInt8]) throws {
  let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
  defer { try? handle.close() }
  try handle.seek(toOffset: offset)
  try handle.write(contentsOf: Data(bytes))
}

func organization(_ n: Int, slug: String? = nil, name: String? = nil) -> CatalogOrganization {
  CatalogOrganization(id: "org-uuid-\(n)", slug: slug ?? "org-\(n)", name: name ?? "Organization \(n)")
}

func pipeline(_ n: Int, organization: String = "acme", slug: String? = nil) -> CatalogPipeline {
  CatalogPipeline(
    id: "pipeline-uuid-\(n)", organizationSlug: organization, slug: slug ?? "pipeline-\(n)", name: "P \(n)")
}

func build(
  _ number: Int, organization: String = "acme", pipeline: String = "web", id: String? = nil,
  state: String = "passed", finished: Bool = true
) -> CatalogBuild {
  CatalogBuild(
    id: id ?? "build-\(organization)-\(pipeline)-\(number)", organizationSlug: organization, pipelineSlug: pipeline,
    number: number, state: state, createdAt: 1_700_000_000 + Int64(number), finishedAt: finished ? 1_700_000_100 : nil,
    isFinished: finished, json: Array("{\"number\":\(number)}".utf8))
}

func job(_ id: String, build: CatalogBuild, name: String? = nil, retried: Bool = false) -> CatalogJob {
  CatalogJob(
    id: id, buildID: build.id, type: "script", name: name ?? "job \(id)", stepKey: "key-\(id)", state: "passed",
    retried: retried, startedAt: 1_700_000_010, finishedAt: 1_700_000_090)
}
