import Testing
@Test func placeholderSinksTests() { #expect(Bool(true)) }
