/// The end-to-end tests' fault proxy, `Tests/e2e/fault_proxy.py`, run as a program on a loopback
/// port in front of `upstream` (moto_server): it passes every request on, except that it spoils the
/// next ones with `faults`, in order, each in the next request it fits (its header lists them:
/// "503" S3's SlowDown, "short" half a body then a close, "long" 10 bytes too many, "redirect"
/// S3's PermanentRedirect naming `redirectRegion`, ...).
public enum FaultProxy {
  public static func start(
    upstream: ChildServer, faults: [String], redirectRegion: String = "eu-west-3"
  ) throws -> ChildServer {
    // The readiness probe only connects: a request would be proxied, and could take a fault.
    try ChildServer(
      [
        "python3", TestPaths.script("e2e/fault_proxy.py"), "--port", "{port}", "--upstream", "\(upstream.port)",
        "--next", faults.joined(separator: ","), "--redirect-region", redirectRegion,
      ], probeWithRequests: false)
  }
}
