import Testing
@testable import OScam

@Suite struct ConfigEditTests {
    static let user = """
        # shop accounts
        [account]
        user = alice
        pwd = old

        """

    func document(_ text: String = user, _ file: OScamFile = .user) -> ConfigDocument {
        ConfigDocument(text: text, file: file, path: "/etc/oscam/\(file.rawValue)")
    }

    @Test(arguments: [
        ConfigEdit.upsertAccount(user: "alice", set: [KeyValue("pwd", "x\n[account]\nuser = evil")], unset: []),
        .upsertAccount(user: "alice", set: [KeyValue("pwd", "tab\tinside")], unset: []),
        .upsertAccount(user: "alice", set: [KeyValue("pwd", " padded")], unset: []),
        .upsertAccount(user: "alice", set: [KeyValue("pw=d", "x")], unset: []),
        .upsertAccount(user: "alice", set: [KeyValue("PWD", "x")], unset: []),
        .upsertAccount(user: "alice", set: [KeyValue("user", "bob")], unset: []),
        .upsertAccount(user: "alice", set: [], unset: ["user"]),
        .upsertAccount(user: "[account]", set: [], unset: []),
        .upsertAccount(user: "a\rb", set: [], unset: []),
        .upsertAccount(user: " alice", set: [], unset: []),
        .upsertAccount(user: String(repeating: "a", count: 64), set: [], unset: []),
        .upsertAccount(user: "", set: [], unset: []),
        .deleteAccount(user: "a,b"),
        .set(section: "global", key: "nice", value: "1"),
    ])
    func injectionAndMisuseAreRefusedBeforeAnythingChanges(_ edit: ConfigEdit) {
        var doc = document()
        let before = doc.serialized()
        #expect(throws: ConfigEditError.self) { try doc.apply([.deleteAccount(user: "alice"), edit]) }
        #expect(doc.serialized() == before)
    }

    @Test func confEditsNeedAKnownSectionAndAConfFile() {
        var conf = document("[global]\nnice = 1\n", .conf)
        #expect(throws: ConfigEditError.self) { try conf.apply([.set(section: "Global", key: "nice", value: "2")]) }
        #expect(throws: ConfigEditError.self) { try conf.apply([.set(section: "camd35", key: "port", value: "2")]) }
        #expect(throws: ConfigEditError.self) { try conf.apply([.upsertAccount(user: "a", set: [], unset: [])]) }
        var server = document("[reader]\nlabel = x\n", .server)
        #expect(throws: ConfigEditError.self) { try server.apply([.set(section: "global", key: "nice", value: "2")]) }
    }

    @Test func tooManyEdits() {
        var doc = document()
        let edits = Array(repeating: ConfigEdit.deleteAccount(user: "nobody"), count: 1001)
        #expect(throws: ConfigEditError.self) { try doc.apply(edits) }
    }

    @Test func errorsNeverRepeatTheValue() {
        var doc = document()
        do {
            try doc.apply([.upsertAccount(user: "alice", set: [KeyValue("pwd", "hunter2\n")], unset: [])])
            Issue.record("expected a refusal")
        } catch {
            #expect(!error.description.contains("hunter2"))
            #expect(error.description.hasPrefix("/etc/oscam/oscam.user: edit 1:"))
        }
    }

    @Test func unchangedEditLeavesTheFileByteIdentical() throws {
        var doc = document()
        let before = doc.serialized()
        #expect(try doc.apply([.upsertAccount(user: "alice", set: [KeyValue("pwd", "old")], unset: ["expdate"])]) == [])
        #expect(doc.serialized() == before)
    }

    @Test func overlongLinesBlockEdits() {
        var doc = document("[account]\nuser = a\n# " + String(repeating: "x", count: 17_000) + "\n")
        #expect(doc.problems.contains { $0.severity == .error && $0.line == 3 })
        #expect(throws: ConfigEditError.self) { try doc.apply([.deleteAccount(user: "a")]) }
    }

    @Test func aValueThatStartsWithATabAfterEqualsIsRewrittenSafely() throws {
        var doc = document("[account]\nuser = a\npwd =\told\n")
        try doc.apply([.upsertAccount(user: "a", set: [KeyValue("pwd", "new")], unset: [])])
        #expect(String(decoding: doc.serialized(), as: UTF8.self) == "[account]\nuser = a\npwd = new\n")
    }

    @Test func deleteTakesEveryDuplicateAndKeepsNeighbouringComments() throws {
        var doc = document("""
            [account]
            user = a

            # b is next
            [account]
            user = b
            # inside b
            pwd = x

            [account]
            user = a

            """)
        try doc.apply([.deleteAccount(user: "a")])
        // The blank line that separated the last record stays: lines outside a record are never
        // removed with it.
        #expect(String(decoding: doc.serialized(), as: UTF8.self) == """
            # b is next
            [account]
            user = b
            # inside b
            pwd = x


            """)
    }

    @Test func implicitGlobalKeysAreEditedInPlace() throws {
        var doc = document("nice = 1\n[webif]\nhttpport = 8888\n", .conf)
        try doc.apply([.set(section: "global", key: "nice", value: "5"), .set(section: "global", key: "sleep", value: "2")])
        #expect(String(decoding: doc.serialized(), as: UTF8.self) == "nice = 5\nsleep = 2\n[webif]\nhttpport = 8888\n")
    }
}
