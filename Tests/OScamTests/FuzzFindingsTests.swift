import Testing
@testable import OScam

/// What the fuzz targets (reliability/fuzz, docs/reliability.md "Fuzzing") found, each kept as
/// the smallest input that broke the invariant, so the fix stays fixed without a fuzzer.
@Suite struct FuzzFindingsTests {
    /// config_document: an oscam.conf section name with a control byte went raw into the
    /// "set again" warning, so a file could forge a line in `check-config`'s output.
    @Test func aSectionNameCannotForgeALineInAProblem() {
        let document = ConfigDocument(text: "[rk\u{0}der]\ndevice = a\ndevice = b\n", file: .conf, path: "oscam.conf")
        let messages = document.allProblems().map(\.message)
        #expect(messages.contains("key 'device' in [rk?der] is set again on line 3, which wins"))
        #expect(!messages.contains { $0.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F } })
    }

    /// config_document: an upsert naming a key in both `set` and `unset` removed it from an
    /// existing account but wrote it into a new one (input: `# mini` and such an edit).
    @Test(arguments: ["# mini", "[account]\nuser = ünï\ngroup = 3\n"])
    func aKeyBothSetAndUnsetEndsUpAbsentForANewAccountToo(_ text: String) throws {
        var document = ConfigDocument(text: text, file: .user, path: "oscam.user")
        try document.apply([.upsertAccount(user: "ünï", set: [KeyValue("nice", "1"), KeyValue("group", "1,2")],
                                           unset: ["group"])])
        let account = try #require(document.records().first)
        #expect(account.value("group") == nil && account.value("nice") == "1")
    }

    /// list_syntax: an ident group without `:` was read as a CAID with no provider, which OScam
    /// skips (chk_ftab), and its notation `0000:` did not read back.
    @Test(arguments: ["0", "0963", "0963:000000;098C"])
    func anIdentGroupWithoutProvidersIsRefused(_ value: String) {
        #expect(throws: ListSyntaxError.self) { try ListSyntax.idents(value) }
    }

    /// list_syntax: port lists were split on `Character`s, and Unicode makes U+037E (Greek
    /// question mark) canonically equal to `;`, so `12\u{37E}` was two entries to the agent and
    /// one to OScam, and the error named an entry past the end of the list.
    @Test func aGreekQuestionMarkDoesNotSplitAPortList() {
        #expect(throws: ListSyntaxError(syntax: "cs378x port", position: 1, message: "port must be a number from 0 to 65535")) {
            try ListSyntax.camd35Ports("12\u{37E}")
        }
    }
}
