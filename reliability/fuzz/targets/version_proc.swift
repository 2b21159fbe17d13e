@testable import OScam

// What discovery and the host collectors read from files other programs write: oscam.version,
// /proc/<pid>/stat, cmdline and cgroup, /proc/stat, mountinfo, meminfo, loadavg, os-release,
// OScam's command line, systemd unit files, drop-ins and environment files. Every parser runs
// on the same input (the ones that take a second string, a unit name, take the first line).
// None may crash; where a parser has a structure, what it returns must have it.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVersionProc(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzerBytes(data, size)
    let text = String(decoding: bytes, as: UTF8.self)
    let firstLine = String(text.prefix { $0 != "\n" && $0 != "\r\n" })
    versionFile(text)
    procFiles(bytes, text)
    hostFiles(text)
    systemd(text, unitName: firstLine)
    return 0
}

func versionFile(_ text: String) {
    let file = OScamVersionFile.parse(text)
    require(file.configDir.map { $0.hasSuffix("/") } ?? true, "ConfigDir must end in /")
    if let commit = file.commit {
        require((7...40).contains(commit.count) && commit.allSatisfy { $0.isHexDigit && !$0.isUppercase },
                "commit must be 7 to 40 lowercase hex digits: \(commit)")
    }
    if let revision = file.revision, let number = file.versionNumber {
        require(revision >= 0 && number.contains(String(revision)), "revision \(revision) not in \(number)")
    }
    for (name, _) in file.features {
        require(!name.isEmpty, "a feature without a name")
    }
    let version = OScamVersionFile.parseVersion(text)
    require(version == OScamVersionFile.parseVersion(text), "parseVersion must be deterministic")
}

func procFiles(_ bytes: [UInt8], _ text: String) {
    if let stat = LinuxProcTable.parseStat(text) {
        // What was read must read back the same when written in the kernel's layout.
        let fields = [String(stat.state), String(stat.ppid)] + Array(repeating: "0", count: 9)
            + [String(stat.utimeTicks), String(stat.stimeTicks)] + Array(repeating: "0", count: 4)
            + [String(stat.threads), "0", String(stat.startTicks), "0", String(stat.rssPages)]
        let line = "\(stat.pid) (\(stat.comm)) " + fields.joined(separator: " ")
        require(LinuxProcTable.parseStat(line) == stat, "stat does not read back: \(String(reflecting: line))")
    }

    let argv = LinuxProcTable.parseCmdline(bytes)
    if String(validating: bytes, as: UTF8.self) != nil {
        let joined = Array(argv.joined(separator: "\0").utf8) + (bytes.last == 0 ? [0] : [])
        require(joined == bytes, "cmdline does not join back to its bytes: \(argv)")
    }
    let arguments = OScamArguments.parse(argv)
    _ = arguments.hasWatchdog
    _ = OScamArguments.parse(DiscoveryText.lines(text).map(String.init))
    _ = OScamArguments.atoi(text)

    if let unit = LinuxProcTable.parseCgroup(text) {
        require(unit.hasSuffix(".service") && unit.count > ".service".count && !unit.contains("/"),
                "cgroup unit must be a plain *.service name: \(unit)")
    }
    _ = LinuxProcTable.parseBootTime(text)
    _ = LinuxProcTable.parseHidesProcesses(mountinfo: text, mountPoint: "/proc")
}

func hostFiles(_ text: String) {
    if let cpu = ProcParsers.cpuTotals(text) {
        _ = cpu.busy
    }
    if let memory = ProcParsers.memory(text) {
        require(memory.availableKB <= memory.totalKB, "more memory available than there is")
    }
    if let load = ProcParsers.loadAverages(text) {
        require([load.0, load.1, load.2].allSatisfy { $0.isFinite && $0 >= 0 }, "load average must be finite, >= 0")
    }
    _ = ProcParsers.osRelease(text)
}

func systemd(_ text: String, unitName: String) {
    for directive in SystemdDirective.parse(text) {
        require(!directive.key.isEmpty, "a directive without a key")
        require(directive.key == String(DiscoveryText.trim(directive.key)), "a directive key must be trimmed")
    }
    var settings = SystemdServiceSettings()
    settings.apply(text)
    settings.apply(text)
    _ = SystemdServiceSettings.parseEnvironmentFile(text)
    _ = SystemdExecCommand.splitWords(text)

    let specifiers = SystemdSpecifiers(unitName: unitName)
    _ = specifiers.expand(text)
    _ = SystemdSpecifiers.unescapePath(text)
    if let template = SystemdUnitScanner.templateName(of: unitName) {
        require(template.hasSuffix("@.service"), "template name must end in @.service: \(template)")
    }
    for execStart in settings.execStart + [text] {
        if let command = SystemdExecCommand.parse(execStart, specifiers: specifiers, environment: settings.environment) {
            _ = OScamArguments.parse(command.argv)
        }
    }
}
