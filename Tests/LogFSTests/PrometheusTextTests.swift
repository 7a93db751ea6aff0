import LogFS
import SystemBase
import Testing

@Suite struct PrometheusTextTests {
  /// Counters as a daemon without latencies (older than them) answers them.
  static let olderDaemon = """
    {"bytes_fetched":4096,"cache":{"corrupt_blocks":0,"disk_blocks":2,"disk_bytes":2048,"disk_bytes_on_disk":8192,\
    "disk_evictions":1,"disk_hits":5,"disk_queue_bytes":0,"disk_queue_dropped":0,"disk_queue_max_bytes":1024,\
    "memory_bytes":512,"memory_hits":7,"misses":3,"prefetched_blocks":1,"shared_corrupt_blocks":0,\
    "shared_corrupt_sizes":0,"shared_dropped":0,"shared_failures":0,"shared_hits":0,"shared_misses":0,\
    "shared_queue_bytes":0,"shared_size_hits":0,"shared_size_misses":0,"shared_size_writes":0,\
    "shared_stale_sizes":0,"shared_writes":0},"cached_names":10,"failures":0,"heap_bytes":1000,"pid":42,\
    "requests":{"get":3,"head":0,"list":2},"retries":1,"source":"s3://logs"}
    """

  static func statistics() throws -> MountStatistics {
    var statistics = try MountStatistics(json: olderDaemon)
    let get = LatencyHistogram()
    for seconds in [0.004, 0.2, 40] { get.record(seconds: seconds) }
    let list = LatencyHistogram()
    list.record(seconds: 0.05)
    list.record(seconds: 0.05)
    statistics.latency = MountStatistics.Latency(list: list.snapshot, head: .empty, get: get.snapshot)
    return statistics
  }

  @Test func countersHaveTheirHelpTypeAndLabels() throws {
    let lines = try Self.statistics().prometheusText(mountpoint: "/mnt/bk").split(separator: "\n").map(String.init)
    let requests = [
      "# HELP bklogfs_requests_total Requests the mount's stores were sent, by kind (a call and its retries count once).",
      "# TYPE bklogfs_requests_total counter",
      #"bklogfs_requests_total{kind="list",mountpoint="/mnt/bk",store="s3://logs"} 2"#,
      #"bklogfs_requests_total{kind="head",mountpoint="/mnt/bk",store="s3://logs"} 0"#,
      #"bklogfs_requests_total{kind="get",mountpoint="/mnt/bk",store="s3://logs"} 3"#,
    ]
    #expect(Array(lines.prefix(5)) == requests)
    #expect(lines.contains(#"bklogfs_fetched_bytes_total{mountpoint="/mnt/bk",store="s3://logs"} 4096"#))
    #expect(lines.contains("# TYPE bklogfs_cache_bytes gauge"))
    #expect(lines.contains(#"bklogfs_cache_bytes{cache="disk",mountpoint="/mnt/bk",store="s3://logs"} 2048"#))
    #expect(lines.contains(#"bklogfs_block_reads_total{from="store",mountpoint="/mnt/bk",store="s3://logs"} 3"#))
    // No budget without an API, and no maximum from a daemon that did not say it.
    #expect(!lines.contains { $0.contains("rate_limit") || $0.contains("disk_cache_max_bytes") })
  }

  /// Buckets count every request at most their bound (so they never decrease), up to `+Inf`, which
  /// equals `_count`; the sum is in seconds.
  @Test func histogramBucketsAreCumulative() throws {
    let text = try Self.statistics().prometheusText(mountpoint: "/mnt/bk")
    let labels = #"mountpoint="/mnt/bk",store="s3://logs""#
    let get = text.split(separator: "\n").filter {
      $0.hasPrefix("bklogfs_request_duration_seconds") && $0.contains(#"kind="get""#)
    }
    #expect(
      get == [
        #"bklogfs_request_duration_seconds_bucket{kind="get",le="0.005",\#(labels)} 1"#,
        #"bklogfs_request_duration_seconds_bucket{kind="get",le="0.01",\#(labels)} 1"#,
        #"bklogfs_request_duration_seconds_bucket{kind="get",le="0.025",\#(labels)} 1"#,
        #"bklogfs_request_duration_seconds_bucket{kind="get",le="0.05",\#(labels)} 1"#,
        #"bklogfs_request_duration_seconds_bucket{kind="get",le="0.1",\#(labels)} 1"#,
        #"bklogfs_request_duration_seconds_bucket{kind="get",le="0.25",\#(labels)} 2"#,
        #"bklogfs_request_duration_seconds_bucket{kind="get",le="0.5",\#(labels)} 2"#,
        #"bklogfs_request_duration_seconds_bucket{kind="get",le="1",\#(labels)} 2"#,
        #"bklogfs_request_duration_seconds_bucket{kind="get",le="2.5",\#(labels)} 2"#,
        #"bklogfs_request_duration_seconds_bucket{kind="get",le="5",\#(labels)} 2"#,
        #"bklogfs_request_duration_seconds_bucket{kind="get",le="10",\#(labels)} 2"#,
        #"bklogfs_request_duration_seconds_bucket{kind="get",le="30",\#(labels)} 2"#,
        #"bklogfs_request_duration_seconds_bucket{kind="get",le="+Inf",\#(labels)} 3"#,
        #"bklogfs_request_duration_seconds_sum{kind="get",\#(labels)} 40.204"#,
        #"bklogfs_request_duration_seconds_count{kind="get",\#(labels)} 3"#,
      ])
    #expect(text.contains("# TYPE bklogfs_request_duration_seconds histogram\n"))
    #expect(text.contains(#"bklogfs_request_duration_seconds_count{kind="list",\#(labels)} 2"#))
    #expect(text.contains(#"bklogfs_request_duration_seconds_sum{kind="list",\#(labels)} 0.1"#))
    // Only a mount that asks an API has its histogram.
    #expect(!text.contains("bklogfs_api_request_duration_seconds"))
  }

  /// A daemon older than the latencies: its counters, without histograms.
  @Test func countersOfAnOlderDaemonHaveNoHistograms() throws {
    let text = try MountStatistics(json: Self.olderDaemon).prometheusText(mountpoint: "/mnt/bk")
    #expect(text.contains("bklogfs_requests_total{"))
    #expect(!text.contains("histogram"))
  }

  /// A backslash, a double quote or a line break in a label's value is escaped, so it cannot end
  /// the value or the line.
  @Test func labelValuesAreEscaped() throws {
    var statistics = try Self.statistics()
    statistics.source = "file:///logs/a\"b"
    let text = statistics.prometheusText(mountpoint: "/mnt/odd\\name\nnext")
    #expect(
      text.contains(#"bklogfs_retries_total{mountpoint="/mnt/odd\\name\nnext",store="file:///logs/a\"b"} 1"# + "\n"))
    // Every line is a comment or one sample: `name{labels} value`.
    for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
      #expect(line.hasPrefix("# ") || line.hasPrefix("bklogfs_"), "\(line)")
    }
    #expect(text.hasSuffix("\n"))
  }

  @Test func anAPIMountHasItsLatencyAndBudget() throws {
    var statistics = try Self.statistics()
    let api = LatencyHistogram()
    api.record(seconds: 0.3)
    statistics.latency?.api = api.snapshot
    statistics.apiBudget = MountStatistics.APIBudget(remaining: 150, limit: 200)
    let text = statistics.prometheusText(mountpoint: "/mnt/bk")
    #expect(
      text.contains(#"bklogfs_api_request_duration_seconds_bucket{le="0.5",mountpoint="/mnt/bk",store="s3://logs"} 1"#))
    #expect(text.contains(#"bklogfs_api_request_duration_seconds_count{mountpoint="/mnt/bk",store="s3://logs"} 1"#))
    #expect(text.contains(#"bklogfs_api_rate_limit_remaining{mountpoint="/mnt/bk",store="s3://logs"} 150"#))
    #expect(text.contains(#"bklogfs_api_rate_limit{mountpoint="/mnt/bk",store="s3://logs"} 200"#))
  }
}
