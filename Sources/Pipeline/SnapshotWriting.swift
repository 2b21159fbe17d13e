/// The snapshot written straight to bytes. Keys in sorted order; the same output as
/// `json.encoded()` (held together by a test).
extension Snapshot {
    /// Room for the encoded snapshot, so that writing it does not copy it again and again as it
    /// grows: an account or reader takes about 150 bytes.
    var estimatedSize: Int {
        instances.reduce(64 << 10) { $0 + 192 * (($1.accounts?.count ?? 0) + ($1.readers?.count ?? 0)) }
    }

    public func write(to w: inout JSONWriter) {
        w.object { w in
            w.key("agent")
            w.object { w in w.member("version", agentVersion) }
            w.member("collected_at", collectedAt)
            w.key("collector_errors")
            w.array { w in
                for failure in collectorErrors.sorted() {
                    w.object { w in
                        w.member("collector", failure.collector)
                        w.member("error", failure.error)
                        w.member("instance", failure.instance)
                    }
                }
            }
            if let host {
                w.key("host")
                w.object { w in
                    w.member("arch", host.arch)
                    w.member("boot_time", host.bootTime)
                    w.member("cpu_count", host.cpuCount)
                    w.member("hostname", host.hostname)
                    w.member("kernel", host.kernel)
                    w.member("os_id", host.osID)
                    w.member("os_version", host.osVersion)
                }
            }
            w.key("instances")
            w.array { w in
                for instance in instances.sorted(by: { $0.id < $1.id }) {
                    instance.write(to: &w)
                }
            }
            let counts = w.counts
            w.key("redaction")
            w.object { w in
                for rule in counts.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                    if let count = counts[rule] {
                        w.key(named: rule)
                        w.int(count)
                    }
                }
            }
            if let resources {
                w.key("resources")
                w.object { w in
                    w.member("cpu_percent", fixed: resources.cpuPercent)
                    w.member("load_1", fixed: resources.load1)
                    w.member("load_15", fixed: resources.load15)
                    w.member("load_5", fixed: resources.load5)
                    w.member("ram_available_mb", fixed: resources.ramAvailableMB)
                    w.member("ram_total_mb", fixed: resources.ramTotalMB)
                    w.member("ram_used_mb", fixed: resources.ramUsedMB)
                }
            }
            w.member("schema", Snapshot.schema)
            w.member("seq", seq)
            if let truncated {
                w.key("truncated")
                w.object { w in
                    w.member("accounts_total", truncated.accounts)
                    w.member("readers_total", truncated.readers)
                }
            }
        }
    }
}

extension InstanceReport {
    func write(to w: inout JSONWriter) {
        w.object { w in
            if let accounts {
                w.key("accounts")
                // By index: the element is borrowed, not copied (five references retained and
                // released for each of thousands of accounts).
                w.array { w in
                    for index in accounts.indices {
                        accounts[index].write(to: &w)
                    }
                }
            }
            w.member("binary", identity?.binary)
            if let config {
                w.key("config")
                config.write(to: &w)
            }
            w.member("config_dir", identity?.configDir)
            if let identity {
                w.key("discovered_by")
                w.array { w in
                    for entry in identity.discoveredBy {
                        w.object { w in
                            w.member("detail", entry.detail)
                            w.member("source", entry.source)
                        }
                    }
                }
            }
            if let files {
                w.key("files")
                w.object { w in
                    for name in files.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                        guard let file = files[name] else { continue }
                        w.key(named: name)
                        w.object { w in
                            w.member("mtime", file.mtime)
                            w.member("sha256", file.sha256)
                            w.member("size", file.size)
                        }
                    }
                }
            }
            w.member("id", id)
            w.member("name", identity?.name)
            w.member("pid_file", identity?.pidFile)
            if let readers {
                w.key("readers")
                w.array { w in
                    for index in readers.indices {
                        readers[index].write(to: &w)
                    }
                }
            }
            if let runtime {
                w.key("runtime")
                w.object { w in
                    w.member("cpu_percent", fixed: runtime.cpuPercent)
                    w.member("pid", runtime.pid)
                    w.member("rss_mb", fixed: runtime.rssMB)
                    w.member("state", runtime.state)
                    w.member("threads", runtime.threads)
                    w.member("uptime_s", runtime.uptimeSeconds)
                    w.member("watchdog_pid", runtime.watchdogPID)
                }
            }
            w.member("temp_dir", identity?.tempDir)
            w.member("unit", identity?.unit)
            w.member("version", identity?.version)
            if let webif {
                w.key("webif")
                webif.write(to: &w)
            }
        }
    }
}

extension ConfigSummary {
    func write(to w: inout JSONWriter) {
        w.object { w in
            w.member("account_count", accountCount)
            if let global {
                w.key("global")
                w.object { w in
                    for name in global.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                        if let value = global[name] {
                            w.key(named: name)
                            w.string(value)
                        }
                    }
                }
            }
            if let ports {
                w.key("ports")
                w.array { w in
                    for port in ports {
                        w.object { w in
                            w.member("caid", port.caid)
                            w.member("port", port.port)
                            if !port.providers.isEmpty {
                                w.member("providers", strings: port.providers)
                            }
                            w.member("section", port.section)
                            w.member("transport", port.transport)
                        }
                    }
                }
            }
            if let problems {
                w.key("problems")
                w.array { w in
                    for problem in problems {
                        w.object { w in
                            w.member("file", problem.file)
                            w.member("line", problem.line)
                            w.member("message", problem.message)
                            w.member("severity", problem.severity)
                        }
                    }
                }
            }
            w.member("reader_count", readerCount)
        }
    }
}

extension WebIfStatus {
    func write(to w: inout JSONWriter) {
        w.object { w in
            w.member("enabled", enabled)
            w.member("host", host)
            w.member("http_status", httpStatus)
            w.member("latency_ms", latencyMS)
            w.member("port", port)
            w.key("posture")
            w.object { w in
                w.member("allows_loopback", posture.allowsLoopback)
                w.member("binds_all", posture.bindsAll)
                w.member("credentials_set", posture.credentialsSet)
                w.member("loopback_only", posture.loopbackOnly)
                w.member("readonly", posture.readonly)
                w.member("tls", posture.tls)
            }
            w.member("reachable", reachable)
            w.member("readonly", readonly)
            w.member("started_at", startedAt)
            w.member("state", state)
            w.member("tls", tls)
            w.member("version", version)
        }
    }
}

extension AccountInfo {
    func write(to w: inout JSONWriter) {
        w.object { w in
            w.member("caid", strings: caids)
            w.member("enabled", enabled)
            w.member("expdate", expdate)
            w.key("group")
            w.array { w in groups.forEach { w.int($0) } }
            w.member("ident", strings: idents)
            w.member("user", user)
        }
    }
}

extension ReaderInfo {
    func write(to w: inout JSONWriter) {
        w.object { w in
            w.member("caid", strings: caids)
            w.member("device_kind", deviceKind)
            w.member("enabled", enabled)
            w.key("group")
            w.array { w in groups.forEach { w.int($0) } }
            w.member("ident", strings: idents)
            w.member("label", label)
            w.member("protocol", protocolName)
        }
    }
}
