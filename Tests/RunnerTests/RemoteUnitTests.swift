#if canImport(Glibc)
import Glibc
#endif
import Foundation
import OScam
import Pipeline
import Platform
import Sinks
import Synchronization
import Testing
import TestSupport
@testable import Runner

/// A transport that answers by URL substring and records every URL.
final class ScriptedTransport: HTTPTransport, @unchecked Sendable {
    let answers: [(String, Int, String)]
    let urls = Mutex<[String]>([])

    init(_ answers: [(String, Int, String)]) {
        self.answers = answers
    }

    func perform(_ request: HTTPRequest) throws(HTTPError) -> HTTPResponse {
        urls.withLock { $0.append(request.url) }
        guard let (_, status, body) = answers.first(where: { request.url.contains($0.0) }) else {
            throw HTTPError(kind: .refused, message: "Connection refused")
        }
        return HTTPResponse(status: status, headers: [], body: Array(body.utf8), seconds: 0.001)
    }
}

@Suite struct PanelCommandTests {
    static let now: Int64 = 1_795_945_000
    static let instance = DiscoveredInstance.id(forConfigDir: "/etc/oscam/")

    static func parse(_ json: String) throws -> PanelCommand.Parsed {
        PanelCommand.parse(try StrictJSON.parse(Array(json.utf8)), now: now)
    }

    @Test func aValidApplyConfigKeepsEveryEditInOrder() throws {
        let parsed = try Self.parse("""
            {"id":"cmd_1","type":"apply_config","issued_at":1795944000,"expires_at":1795946000,"instance":"\(Self.instance)",
             "file":"oscam.user","base_sha256":"\(String(repeating: "ab", count: 32))",
             "edits":[{"op":"upsert_account","user":"alice","set":{"pwd":"s3cret","caid":"0963"},"unset":["expdate"]},
                      {"op":"delete_account","user":"bob"}]}
            """)
        guard case .valid(let command) = parsed, case .applyConfig(let file, let base, let edits) = command.kind else {
            Issue.record("not valid: \(parsed)")
            return
        }
        #expect(file == .user && base == String(repeating: "ab", count: 32) && command.vetoName == "apply_config")
        #expect(edits == [.upsertAccount(user: "alice", set: [KeyValue("caid", "0963"), KeyValue("pwd", "s3cret")],
                                         unset: ["expdate"]), .deleteAccount(user: "bob")])
    }

    @Test(arguments: [
        (#"{"id":"cmd_2","type":"reboot","issued_at":1,"expires_at":1795946000}"#, "unknown command type"),
        (#"{"id":"cmd_3","type":"resync","issued_at":1,"expires_at":1795944999}"#, "expired"),
        (#"{"id":"cmd_4","type":"service","issued_at":1,"expires_at":1795946000,"instance":"../../etc","action":"stop"}"#, "instance"),
        (#"{"id":"cmd_5","type":"service","issued_at":1,"expires_at":1795946000,"instance":"osc_0123456789abcdef","action":"kill"}"#, "action"),
        (#"{"id":"cmd_6","type":"apply_config","issued_at":1,"expires_at":1795946000,"instance":"osc_0123456789abcdef","file":"oscam.server","edits":[{"op":"delete_account","user":"a"}]}"#, "file"),
        (#"{"id":"cmd_7","type":"apply_config","issued_at":1,"expires_at":1795946000,"instance":"osc_0123456789abcdef","file":"oscam.user","edits":[]}"#, "empty"),
        (#"{"id":"cmd_8","type":"apply_config","issued_at":1,"expires_at":1795946000,"instance":"osc_0123456789abcdef","file":"oscam.user","edits":[{"op":"chmod"}]}"#, "unknown op"),
        (#"{"id":"cmd_9","type":"apply_config","issued_at":1,"expires_at":1795946000,"instance":"osc_0123456789abcdef","file":"oscam.user","base_sha256":"XYZ","edits":[{"op":"delete_account","user":"a"}]}"#, "base_sha256"),
        (#"{"id":"cmd_10","type":"apply_config","issued_at":1,"expires_at":1795946000,"instance":"osc_0123456789abcdef","file":"oscam.user","edits":[{"op":"upsert_account","user":"a","set":{"pwd":7}}]}"#, "string"),
        (#"{"id":"cmd_11","type":"apply_config","issued_at":1,"expires_at":1795946000,"instance":"osc_0123456789abcdef","file":"oscam.conf","edits":[{"op":"set","section":"global","key":"nice","value":"1","extra":"x"}]}"#, "unexpected field"),
        (#"{"id":"cmd_12","type":"resync","issued_at":"soon","expires_at":1795946000}"#, "unix times"),
    ])
    func invalidCommandsAreRejectedWithAReason(_ json: String, _ reason: String) throws {
        guard case .rejected(_, _, let message) = try Self.parse(json) else {
            Issue.record("not rejected: \(json)")
            return
        }
        #expect(message.contains(reason), "\(message)")
    }

    @Test func tooManyEditsAreRejectedBeforeAnyIsParsed() throws {
        let edit = #"{"op":"delete_account","user":"a"}"#
        let json = #"{"id":"cmd_big","type":"apply_config","issued_at":1,"expires_at":1795946000,"instance":"osc_0123456789abcdef","file":"oscam.user","edits":["#
            + Array(repeating: edit, count: 1001).joined(separator: ",") + "]}"
        guard case .rejected(_, _, let message) = try Self.parse(json) else {
            Issue.record("not rejected")
            return
        }
        #expect(message.contains("1001 edits"))
    }

    @Test(arguments: [#"{"type":"resync"}"#, #"{"id":"../x","type":"resync"}"#, #"{"id":"","type":"resync"}"#, "[1]",
                      #"{"id":"cmd_\#(String(repeating: "a", count: 61))","type":"resync"}"#])
    func commandsWithoutAValidIDCannotBeAnswered(_ json: String) throws {
        guard case .unanswerable = try Self.parse(json) else {
            Issue.record("answerable: \(json)")
            return
        }
    }
}

@Suite struct AllowedActionsTests {
    static func file(_ text: String, mode: mode_t = 0o644) throws -> String {
        let dir = try TestEnvironment.makeTempDir("veto")
        try TestEnvironment.write(text, to: dir + "/allowed-actions")
        chmod(dir + "/allowed-actions", mode)
        return dir + "/allowed-actions"
    }

    @Test func anAbsentFileAllowsEverything() {
        #expect(AllowedActions.decide("service:stop", path: "/nonexistent/allowed-actions") == .allowed)
    }

    @Test func aFileAllowsOnlyWhatItLists() throws {
        let path = try Self.file("# operator's choice\napply_config\nservice:reload   # no restarts\n")
        #expect(AllowedActions.decide("apply_config", path: path) == .allowed)
        #expect(AllowedActions.decide("service:reload", path: path) == .allowed)
        #expect(AllowedActions.decide("service:restart", path: path) == .refused("not allowed on this server"))
        #expect(AllowedActions.decide("resync", path: path) == .refused("not allowed on this server"))
        let family = try Self.file("service\n")
        #expect(AllowedActions.decide("service:stop", path: family) == .allowed)
        #expect(AllowedActions.decide("apply_config", path: try Self.file("")) == .refused("not allowed on this server"))
    }

    @Test func aFileThatCouldNotBindTheAgentRefusesEverything() throws {
        guard getuid() == 0 else {
            return  // ownership by root can only be arranged as root; CI runs as root
        }
        guard case .refused(let reason) = AllowedActions.decide("resync", path: try Self.file("resync\n", mode: 0o664)) else {
            Issue.record("a group-writable veto file was obeyed")
            return
        }
        #expect(reason.contains("writable by root only"))
        let path = try Self.file("resync\n")
        chown(path, 65534, 65534)
        #expect(AllowedActions.decide("resync", path: path) != .allowed, "a file not owned by root")
        guard case .refused(let typo) = AllowedActions.decide("resync", path: try Self.file("resync\nservice:reboot\n")) else {
            Issue.record("an unknown line was ignored")
            return
        }
        #expect(typo.contains(":2: unknown action"))
    }
}

@Suite struct ConfLivenessTests {
    @Test func changesAreTheKeysWhoseEffectiveValueDiffers() {
        let old = ConfigDocument(text: "[global]\nnice = 1\nclienttimeout = 4000\nclienttimeout = 5000\n[webif]\nhttpport = 8888\n",
                                 file: .conf, path: "oscam.conf")
        let new = ConfigDocument(text: "[global]\nnice = 1\nclienttimeout = 4500\n[webif]\nhttpport = 8889\nhttprefresh = 5\n",
                                 file: .conf, path: "oscam.conf")
        let changes = ConfChange.between(old, new).map { "\($0.name)=\($0.value ?? "nil")" }
        #expect(changes.sorted() == ["global.clienttimeout=4500", "webif.httpport=8889", "webif.httprefresh=5"])
    }

    @Test func portsAddressesAndModuleSectionsNeedARestart() {
        #expect(ConfLiveness.needsRestart("webif", "httpport") && ConfLiveness.needsRestart("global", "serverip"))
        #expect(ConfLiveness.needsRestart("cccam", "reshare") && ConfLiveness.needsRestart("cs378x", "port"))
        #expect(!ConfLiveness.needsRestart("global", "clienttimeout") && !ConfLiveness.needsRestart("webif", "httpallowed"))
        #expect(ConfLiveness.page(for: "cs357x") == "camd35" && ConfLiveness.page(for: "cs378x") == "camd35tcp")
        #expect(ConfLiveness.page(for: "account") == nil)
    }

    @Test func thePlanFollowsTheInstanceAndItsWebIf() throws {
        func plan(_ conf: String?, state: InstanceState, transport: ScriptedTransport = ScriptedTransport([])) -> String {
            let instance = DiscoveredInstance(id: "osc_0123456789abcdef", name: "t", configDir: "/x/", state: state)
            let document = conf.map { ConfigDocument(text: $0, file: .conf, path: "oscam.conf") }
            switch ReloadPlan.make(instance: instance, conf: document, http: transport, timeout: 1) {
            case .success(.live): return "live"
            case .success(.none(let restart, _)): return restart ? "none+restart" : "none"
            case .failure: return "failure"
            }
        }
        #expect(plan("[webif]\nhttpport = 8888\n", state: .stopped) == "none")
        #expect(plan("[global]\nnice = 1\n", state: .running) == "none+restart")
        #expect(plan("[webif]\nhttpport = 8888\nhttpreadonly = 1\n", state: .running) == "none+restart")
        #expect(plan("[webif]\nhttpport = 8888\nhttpallowed = 127.0.0.1\n", state: .running) == "failure", "refused")
        let readonly = ScriptedTransport([("part=status", 200, #"{"oscam":{"starttime":"x","readonly":"1"}}"#)])
        #expect(plan("[webif]\nhttpport = 8888\nhttpallowed = 127.0.0.1\n", state: .running, transport: readonly) == "none+restart")
        let ok = ScriptedTransport([("part=status", 200, #"{"oscam":{"starttime":"x","readonly":"0"}}"#)])
        #expect(plan("[webif]\nhttpport = 8888\nhttpallowed = 127.0.0.1\n", state: .running, transport: ok) == "live")
    }

    @Test func queryValuesArePercentEncoded() {
        #expect(WebIfActions.formEncode("a b&c=d/é") == "a%20b%26c%3Dd%2F%C3%A9")
        #expect(WebIfActions.userID("alice") == "id_6384e2b2184bcbf58eccf10ca7a6563c", "OScam's usermd5 from the fixture")
    }
}

@Suite(.serialized) struct CommandStoreTests {
    static func channel(stateDir: String, instance: DiscoveredInstance, http: any HTTPTransport = ScriptedTransport([]))
        -> CommandChannel {
        channel(stateDir: stateDir, instances: [instance], http: http)
    }

    static func channel(stateDir: String, instances: [DiscoveredInstance], http: any HTTPTransport = ScriptedTransport([]))
        -> CommandChannel {
        var config = AgentConfig()
        mkdir(stateDir, 0o700)
        config.stateDir = stateDir
        config.allowedActionsFile = stateDir + "/no-veto"
        let client = PanelClient(baseURL: "https://127.0.0.1:9", transport: ScriptedTransport([]), tls: .verify(caFile: nil, pin: nil),
                                 signer: PanelSigner(serverID: "srv_0123456789abcdef", secret: Array(repeating: 1, count: 32)),
                                 clockOffset: 0, clock: unixNow)
        return CommandChannel(CommandChannel.Dependencies(
            config: config, pollClient: client, resultClient: client, logger: Logger(level: .debug, output: MemoryLogOutput()),
            http: http, discover: { DiscoveryResult(instances: instances) }, procTable: LinuxProcTable(root: "/proc"),
            requestSnapshot: { _ in }, isTerminating: { true }, isRevoked: { false }))
    }

    @Test func recordsRoundTripAndOnlyUnansweredOnesAreResent() throws {
        let dir = try TestEnvironment.makeTempDir("store")
        let store = CommandStore(stateDir: dir)
        let result = CommandResult(status: .succeeded, startedAt: 10, finishedAt: 11, message: "two\nlines",
                                   details: ["reload": .string("live")])
        let done = CommandRecord(id: "cmd_a", type: "apply_config", instance: "osc_0123456789abcdef", expiresAt: 100,
                                 phase: .done, startedAt: 10, result: result)
        try store.save(done)
        try store.save(CommandRecord(id: "cmd_b", type: "resync", instance: nil, expiresAt: 100, phase: .running, startedAt: 12))
        #expect(store.load("cmd_a") == done)
        #expect(store.unreported().map(\.id) == ["cmd_a"])
        #expect(String(decoding: result.json.encoded(), as: UTF8.self).contains(#""message":"two lines""#))
        var reported = done
        reported.reported = true
        try store.save(reported)
        #expect(store.unreported().isEmpty)
        store.prune(now: 100 + CommandStore.keepAfterExpiry + 1)
        #expect(!store.exists("cmd_a") && store.exists("cmd_b"), "answered records go after expiry; running ones stay")
        try TestEnvironment.write("{not json", to: dir + "/commands/cmd_c.json")
        #expect(store.exists("cmd_c") && store.load("cmd_c") == nil, "a damaged record still means: seen")
    }

    @Test func aRepeatedCommandIsAnsweredFromItsRecordAndNotRunAgain() throws {
        let dir = try TestEnvironment.makeTempDir("redeliver")
        let configDir = dir + "/oscam/"
        try FileManager.default.createDirectory(atPath: configDir, withIntermediateDirectories: true)
        try TestEnvironment.write("[account]\nuser = alice\n", to: configDir + "oscam.user")
        let instance = DiscoveredInstance(id: DiscoveredInstance.id(forConfigDir: configDir), name: "t", configDir: configDir,
                                          state: .stopped)
        let channel = Self.channel(stateDir: dir + "/state", instance: instance)
        let command: JSONValue = .object([
            "id": .string("cmd_twice"), "type": .string("apply_config"), "issued_at": .int(unixNow()),
            "expires_at": .int(unixNow() + 600), "instance": .string(instance.id), "file": .string("oscam.user"),
            "edits": .array([.object(["op": .string("upsert_account"), "user": .string("bob"),
                                      "set": .object(["group": .string("1")])])]),
        ])
        channel.receive(command)
        #expect(DaemonTests.waitFor(10) { channel.store.load("cmd_twice")?.phase == .done })
        let first = try #require(channel.store.load("cmd_twice"))
        #expect(first.result?.status == .succeeded)
        #expect(first.result?.details["reload"] == .string("none") && first.result?.details["restart_required"] == .bool(false))
        // The operator changes the file afterwards; a re-delivery must not touch it again.
        try TestEnvironment.write("[account]\nuser = alice\n", to: configDir + "oscam.user")
        channel.receive(command)
        usleep(300_000)
        #expect(TestEnvironment.read(configDir + "oscam.user") == "[account]\nuser = alice\n")
        #expect(channel.store.load("cmd_twice") == first)
        #expect(listDirectory(dir + "/state/backup/" + instance.id).count == 1)
    }

    @Test func anIdThatNamesTwoInstancesTouchesNeither() throws {
        let dir = try TestEnvironment.makeTempDir("collision")
        var instances: [DiscoveredInstance] = []
        for name in ["a", "b"] {
            let configDir = dir + "/" + name + "/"
            try FileManager.default.createDirectory(atPath: configDir, withIntermediateDirectories: true)
            try TestEnvironment.write("[account]\nuser = alice\n", to: configDir + "oscam.user")
            // The same id for both, as two paths whose 64-bit hashes collide would have.
            instances.append(DiscoveredInstance(id: "osc_00000000000000aa", name: name, configDir: configDir, state: .stopped))
        }
        let channel = Self.channel(stateDir: dir + "/state", instances: instances)
        channel.receive(.object([
            "id": .string("cmd_collide"), "type": .string("apply_config"), "issued_at": .int(unixNow()),
            "expires_at": .int(unixNow() + 600), "instance": .string("osc_00000000000000aa"), "file": .string("oscam.user"),
            "edits": .array([.object(["op": .string("delete_account"), "user": .string("alice")])]),
        ]))
        #expect(DaemonTests.waitFor(10) { channel.store.load("cmd_collide")?.phase == .done })
        let result = try #require(channel.store.load("cmd_collide")?.result)
        #expect(result.status == .rejected)
        #expect(result.message.contains("names 2 instances"))
        for name in ["a", "b"] {
            #expect(TestEnvironment.read(dir + "/" + name + "/oscam.user") == "[account]\nuser = alice\n")
        }
    }

    @Test func aPasswordSentByThePanelNeverReachesAResult() throws {
        let dir = try TestEnvironment.makeTempDir("secret-result")
        let configDir = dir + "/oscam/"
        try FileManager.default.createDirectory(atPath: configDir, withIntermediateDirectories: true)
        try TestEnvironment.write("[account]\nuser = alice\n", to: configDir + "oscam.user")
        let instance = DiscoveredInstance(id: DiscoveredInstance.id(forConfigDir: configDir), name: "t", configDir: configDir,
                                          state: .stopped)
        let channel = Self.channel(stateDir: dir + "/state", instance: instance)
        for (id, value) in [("cmd_ok", "Panel-Sent-Pw-1"), ("cmd_bad", "Panel-Sent-Pw-2\u{7}")] {
            channel.receive(.object([
                "id": .string(id), "type": .string("apply_config"), "issued_at": .int(unixNow()),
                "expires_at": .int(unixNow() + 600), "instance": .string(instance.id), "file": .string("oscam.user"),
                "edits": .array([.object(["op": .string("upsert_account"), "user": .string("bob"),
                                          "set": .object(["pwd": .string(value)])])]),
            ]))
            #expect(DaemonTests.waitFor(10) { channel.store.load(id)?.phase == .done })
            let stored = String(decoding: readBytes(dir + "/state/commands/\(id).json") ?? [], as: UTF8.self)
            #expect(!stored.contains("Panel-Sent-Pw"), "\(stored)")
        }
        #expect(channel.store.load("cmd_bad")?.result?.status == .rejected)
    }
}

@Suite struct ServiceSpawnTests {
    @Test func theArgvIsPassedAsIsWithoutAShell() throws {
        let dir = try TestEnvironment.makeTempDir("spawn")
        try TestEnvironment.write("#!/bin/sh\nprintf '%s|' \"$@\" > \(dir)/argv\nenv > \(dir)/env\necho 'first line' >&2\nexit 3\n",
                                  to: dir + "/prog")
        chmod(dir + "/prog", 0o755)
        let outcome = ServiceControl.spawn([dir + "/prog", "-n", "a b", "$(id)", ";reboot"], timeout: 10)
        #expect(outcome.exitCode == 3 && outcome.error == "first line")
        #expect(TestEnvironment.read(dir + "/argv") == "-n|a b|$(id)|;reboot|")
        #expect(!TestEnvironment.read(dir + "/env").contains("MYOSICAM"), "a fixed, minimal environment")
        #expect(ServiceControl.spawn(["/nonexistent/sudo"], timeout: 5).error?.contains("could not be run") == true)
        let slow = ServiceControl.spawn(["/bin/sleep", "30"], timeout: 0.5)
        #expect(slow.exitCode == nil && slow.error?.contains("killed") == true)
    }

    @Test func onlyPlainUnitNamesReachSudo() {
        #expect(ServiceControl.isSafeUnit("oscam.service") && ServiceControl.isSafeUnit("oscam@main.service"))
        for bad in ["oscam", "-oscam.service", "oscam.service; id", "../oscam.service", "osc am.service", "oscam.socket"] {
            #expect(!ServiceControl.isSafeUnit(bad), "\(bad)")
        }
    }
}

@Suite struct InPlaceFileTests {
    @Test func theInodeOwnerAndModeStayAndAFullDiskKeepsTheOldContent() throws {
        let dir = try TestEnvironment.makeTempDir("inplace")
        let path = dir + "/oscam.user"
        try TestEnvironment.write("old content\n", to: path)
        chmod(path, 0o640)
        var before = stat()
        stat(path, &before)
        try InPlaceFile.replaceContents(of: path, with: Array("new and longer content\n".utf8))
        try InPlaceFile.replaceContents(of: path, with: Array("short\n".utf8))
        var after = stat()
        stat(path, &after)
        #expect(TestEnvironment.read(path) == "short\n")
        #expect(after.st_ino == before.st_ino && after.st_mode == before.st_mode && after.st_uid == before.st_uid)
        #expect(throws: AtomicFile.Error.self) { try InPlaceFile.replaceContents(of: dir + "/missing", with: [1]) }
        // A size-limited filesystem, where the machine allows mounting one (CI runs as root).
        let mountPoint = dir + "/small"
        mkdir(mountPoint, 0o700)
        guard getuid() == 0, mount("tmpfs", mountPoint, "tmpfs", 0, "size=64k") == 0 else {
            return
        }
        defer { umount(mountPoint) }
        let small = mountPoint + "/oscam.conf"
        try TestEnvironment.write("[global]\nnice = 1\n", to: small)
        let filler = mountPoint + "/filler"
        try? Data(count: 60 * 1024).write(to: URL(fileURLWithPath: filler))
        do {
            try InPlaceFile.replaceContents(of: small, with: Array(repeating: 0x41, count: 32 * 1024))
            Issue.record("a write larger than the free space succeeded")
        } catch {
            #expect(error.isNoSpace)
            #expect(!InPlaceFile.leftUntouched(error), "a failed reservation may have grown the file")
        }
        #expect(TestEnvironment.read(small) == "[global]\nnice = 1\n", "the old content is intact")
    }

    /// A file that cannot even be opened for writing (read-only file system, missing, a
    /// directory) is untouched: the applier then writes nothing back and logs no failed restore.
    @Test func aFileThatCannotBeOpenedIsLeftUntouched() throws {
        let dir = try TestEnvironment.makeTempDir("inplace-open")
        for path in [dir + "/missing", dir] {
            do {
                try InPlaceFile.replaceContents(of: path, with: [1])
                Issue.record("\(path) was written")
            } catch {
                #expect(InPlaceFile.leftUntouched(error), "\(error)")
            }
        }
    }
}
