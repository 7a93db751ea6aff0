import Foundation
public import S3Client
public import Testing

/// The Ceph RADOS Gateway that `scripts/rgw start` runs (scripts/test starts one for the whole run):
/// a real S3 server, which checks signatures and answers as S3 does where moto does not. Found
/// through `BKLOGFS_RGW_ENDPOINT`, `BKLOGFS_RGW_ACCESS_KEY` and `BKLOGFS_RGW_SECRET_KEY`.
public struct RGW: Sendable {
  public var endpoint: String
  public var credentials: AWSCredentials

  public static let shared: Result<RGW, ServerError> = {
    let environment = ProcessInfo.processInfo.environment
    guard let endpoint = environment["BKLOGFS_RGW_ENDPOINT"], !endpoint.isEmpty,
      let access = environment["BKLOGFS_RGW_ACCESS_KEY"], !access.isEmpty,
      let secret = environment["BKLOGFS_RGW_SECRET_KEY"], !secret.isEmpty
    else {
      return .failure(
        ServerError(
          message:
            "no RADOS Gateway: BKLOGFS_RGW_ENDPOINT/ACCESS_KEY/SECRET_KEY are not set (scripts/rgw start DIR, then . DIR/env)"
        ))
    }
    return .success(RGW(endpoint: endpoint, credentials: AWSCredentials(accessKeyID: access, secretAccessKey: secret)))
  }()

  /// The gateway, or nil after recording an issue (CI) or printing why the test is skipped.
  public static func require(sourceLocation: SourceLocation = #_sourceLocation) -> RGW? {
    switch shared {
    case .success(let rgw): return rgw
    case .failure(let error):
      if Moto.isCI {
        Issue.record("\(error.message) (CI=true, so this fails)", sourceLocation: sourceLocation)
      } else {
        print("skipped: \(error.message)")
      }
      return nil
    }
  }
}
