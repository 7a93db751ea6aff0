import SystemBase

extension MountStatistics {
  /// The counters in Prometheus's text exposition format (version 0.0.4), as
  /// `bklogfs mount --metrics` writes them for node_exporter's textfile collector and
  /// `bklogfs stats --prometheus` prints them. Every sample carries the `mountpoint` and the
  /// `store` (the stores' identities, such as `s3://bucket`: never a credential); request latencies
  /// are histograms in seconds. A pure function of the counters, so a test can compare its lines.
  public func prometheusText(mountpoint: String) -> String {
    var text = PrometheusText(common: [("mountpoint", mountpoint), ("store", source)])
    text.family(
      "bklogfs_requests_total", .counter,
      "Requests the mount's stores were sent, by kind (a call and its retries count once).",
      [([("kind", "list")], requests.list), ([("kind", "head")], requests.head), ([("kind", "get")], requests.get)])
    if let latency {
      text.histograms(
        "bklogfs_request_duration_seconds",
        "How long the stores' requests took, retries included, by kind.",
        [([("kind", "list")], latency.list), ([("kind", "head")], latency.head), ([("kind", "get")], latency.get)])
      if let api = latency.api {
        text.histograms(
          "bklogfs_api_request_duration_seconds", "How long each HTTP request to Buildkite's API took.", [([], api)])
      }
    }
    text.family("bklogfs_fetched_bytes_total", .counter, "Body bytes the stores sent.", bytesFetched)
    text.family("bklogfs_retries_total", .counter, "Requests repeated after a transient failure.", retries)
    text.family("bklogfs_failures_total", .counter, "Requests that failed after every retry.", failures)
    text.family(
      "bklogfs_block_reads_total", .counter, "Cache blocks read, by where they came from.",
      [
        ([("from", "memory")], cache.memoryHits), ([("from", "disk")], cache.diskHits),
        ([("from", "shared")], cache.sharedHits), ([("from", "store")], cache.misses),
      ])
    text.family(
      "bklogfs_prefetched_blocks_total", .counter, "Blocks fetched ahead of a sequential reader.",
      cache.prefetchedBlocks)
    text.family(
      "bklogfs_cache_bytes", .gauge, "Bytes of logs the caches hold.",
      [([("cache", "memory")], cache.memoryBytes), ([("cache", "disk")], cache.diskBytes)])
    text.family(
      "bklogfs_disk_cache_used_bytes", .gauge, "Bytes the disk cache's files take on disk.", cache.diskBytesOnDisk)
    if let maxBytes = cache.diskMaxBytes {
      text.family(
        "bklogfs_disk_cache_max_bytes", .gauge, "The most the disk cache may hold (0: it keeps none).", maxBytes)
    }
    text.family("bklogfs_disk_cache_blocks", .gauge, "Blocks the disk cache holds.", cache.diskBlocks)
    text.family(
      "bklogfs_disk_cache_evictions_total", .counter, "Blocks evicted from the disk cache.", cache.diskEvictions)
    text.family(
      "bklogfs_disk_cache_corrupt_blocks_total", .counter, "Disk cache blocks refused as damaged.",
      cache.corruptBlocks)
    text.family(
      "bklogfs_disk_write_queue_bytes", .gauge, "Bytes waiting to be written to the disk cache.",
      cache.diskQueueBytes)
    text.family(
      "bklogfs_disk_write_dropped_total", .counter, "Blocks not written to the disk cache because its queue was full.",
      cache.diskQueueDropped)
    text.family(
      "bklogfs_shared_cache_requests_total", .counter, "Blocks asked of or written to the shared cache, by outcome.",
      [
        ([("result", "hit")], cache.sharedHits), ([("result", "miss")], cache.sharedMisses),
        ([("result", "write")], cache.sharedWrites), ([("result", "damaged")], cache.sharedCorruptBlocks),
        ([("result", "failure")], cache.sharedFailures), ([("result", "dropped")], cache.sharedDropped),
      ])
    text.family(
      "bklogfs_shared_cache_queue_bytes", .gauge, "Bytes waiting to be written to the shared cache.",
      cache.sharedQueueBytes)
    text.family("bklogfs_cached_names", .gauge, "Names (files, directories, links) the inode table holds.", cachedNames)
    text.family("bklogfs_heap_bytes", .gauge, "The daemon's heap in use.", heapBytes)
    if let apiBudget {
      text.family(
        "bklogfs_api_rate_limit_remaining", .gauge, "Requests Buildkite's API still allows in its window.",
        apiBudget.remaining)
      if let limit = apiBudget.limit {
        text.family("bklogfs_api_rate_limit", .gauge, "Requests Buildkite's API allows in a window.", limit)
      }
    }
    return text.output
  }
}

/// Builds exposition text family by family: HELP, TYPE, then the samples, each with the common
/// labels after its own.
struct PrometheusText {
  enum MetricType: String {
    case counter, gauge, histogram
  }

  typealias Labels = [(String, String)]

  let common: Labels
  var output = ""

  mutating func family(_ name: String, _ type: MetricType, _ help: String, _ value: Int) {
    family(name, type, help, [([], value)])
  }

  mutating func family(_ name: String, _ type: MetricType, _ help: String, _ samples: [(Labels, Int)]) {
    header(name, type, help)
    for (labels, value) in samples { sample(name, labels, String(value)) }
  }

  /// Histograms of latencies: `_bucket` samples with cumulative counts up to `le="+Inf"`, which
  /// equals `_count`, then `_sum` in seconds.
  mutating func histograms(_ name: String, _ help: String, _ histograms: [(Labels, LatencyHistogram.Snapshot)]) {
    header(name, .histogram, help)
    for (labels, histogram) in histograms {
      let cumulative = histogram.cumulativeCounts
      for (index, count) in cumulative.enumerated() {
        let bound = index < LatencyHistogram.bounds.count ? Self.number(LatencyHistogram.bounds[index]) : "+Inf"
        sample(name + "_bucket", labels + [("le", bound)], String(count))
      }
      sample(name + "_sum", labels, Self.number(histogram.sumSeconds))
      sample(name + "_count", labels, String(cumulative.last ?? 0))
    }
  }

  private mutating func header(_ name: String, _ type: MetricType, _ help: String) {
    output += "# HELP \(name) \(Self.escapedHelp(help))\n# TYPE \(name) \(type.rawValue)\n"
  }

  private mutating func sample(_ name: String, _ labels: Labels, _ value: String) {
    let all = (labels + common).map { "\($0.0)=\"\(Self.escapedLabel($0.1))\"" }
    output += name + (all.isEmpty ? "" : "{" + all.joined(separator: ",") + "}") + " " + value + "\n"
  }

  /// A number as Go's Prometheus client writes it: whole numbers without a fraction ("1", not "1.0").
  static func number(_ value: Double) -> String {
    if value.isFinite && value == value.rounded() && abs(value) < 1e15 { return String(Int(value)) }
    return String(value)
  }

  /// A label value: backslash, double quote and line feed escaped, as the format asks.
  static func escapedLabel(_ value: String) -> String {
    var out = ""
    for character in value.unicodeScalars {
      switch character {
      case "\\": out += "\\\\"
      case "\"": out += "\\\""
      case "\n": out += "\\n"
      default: out.unicodeScalars.append(character)
      }
    }
    return out
  }

  /// HELP text: backslash and line feed escaped.
  static func escapedHelp(_ text: String) -> String {
    text.replacing("\\", with: "\\\\").replacing("\n", with: "\\n")
  }
}
