import Testing
@Test func placeholderPlatformTests() { #expect(Bool(true)) }
